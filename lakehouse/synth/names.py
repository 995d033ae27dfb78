"""Word lists for names of people, companies, places and streets (invented; any resemblance is chance)."""

from __future__ import annotations

import numpy as np

FIRST = (
    "James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth", "William",
    "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Charles", "Karen", "Chris", "Lisa",
    "Daniel", "Nancy", "Matthew", "Betty", "Anthony", "Sandra", "Mark", "Ashley", "Donald", "Kimberly", "Steven",
    "Emily", "Paul", "Donna", "Andrew", "Michelle", "Joshua", "Carol", "Kenneth", "Amanda", "Kevin", "Melissa",
    "Brian", "Deborah", "George", "Stephanie", "Tim", "Rebecca", "Ronald", "Laura", "Jason", "Helen", "Ryan",
    "Sharon", "Jacob", "Cynthia", "Gary", "Amy", "Nicholas", "Angela", "Eric", "Anna", "Jonathan", "Brenda",
    "Larry", "Emma", "Justin", "Olivia", "Scott", "Nicole", "Brandon", "Samantha", "Frank", "Katherine", "Ben",
    "Christine", "Gregory", "Rachel", "Raymond", "Janet", "Samuel", "Maria", "Patrick", "Diane", "Alex", "Julie",
    "Jack", "Joyce", "Dennis", "Victoria", "Jerry", "Kelly", "Tyler", "Lauren", "Aaron", "Christina", "Jose",
    "Joan", "Adam", "Evelyn", "Nathan", "Judith", "Henry", "Megan", "Zach", "Andrea", "Doug", "Cheryl", "Peter",
    "Hannah", "Kyle", "Jacqueline", "Noah", "Martha", "Ethan", "Gloria", "Jeremy", "Teresa", "Priya", "Wei",
    "Mohammed", "Aisha", "Carlos", "Sofia", "Hiroshi", "Mei", "Diego", "Fatima", "Ivan", "Elena", "Omar", "Leila",
    "Raj", "Ana"
)
LAST = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
    "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee",
    "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Allen", "King", "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson", "Baker",
    "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Gomez", "Phillips", "Evans", "Turner", "Diaz",
    "Parker", "Cruz", "Edwards", "Collins", "Reyes", "Stewart", "Morris", "Morales", "Murphy", "Cook", "Rogers",
    "Gutierrez", "Ortiz", "Morgan", "Cooper", "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Kim",
    "Cox", "Ward", "Richardson", "Watson", "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza",
    "Ruiz", "Hughes", "Price", "Alvarez", "Castillo", "Sanders", "Patel", "Myers", "Long", "Ross", "Foster",
    "Jimenez", "Powell", "Jenkins", "Perry", "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson",
    "Barnes", "Gonzales", "Fisher", "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton",
    "Graham", "Reynolds", "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson",
    "Ellis", "Tran", "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison",
    "Fernandez", "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman",
    "Webb", "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
    "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Munoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner", "Black",
    "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice", "Schmidt", "Garza",
    "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner", "Payne", "Grant", "Dunn",
    "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Hansen"
)
ADJ = (
    "Summit", "Blue Harbor", "Granite", "Cedar", "Front Range", "Aspen", "Red Rock", "Silver Pine", "Eagle",
    "Prairie", "Mesa", "Golden", "Canyon", "Clear Creek", "Highland", "North Star", "Evergreen", "Iron Horse",
    "Falcon", "Bright Lake", "Timber Ridge", "Copper", "Sunrise", "Alpine", "Riverbend", "Stonegate", "Bluebird",
    "Keystone", "Crescent", "Pioneer", "Lookout", "Vista", "Oakwood", "Maple", "Westwind", "Arrowhead",
    "Boulder Creek", "Twin Peaks", "Foothill", "Larkspur", "Juniper", "Sagebrush", "Cottonwood", "Longs Peak",
    "Elk Ridge", "Columbine", "Bear Creek", "Flatiron", "Spruce", "Willow", "Pikes", "Platte River", "High Plains",
    "Mountain View", "Sandstone", "Lodgepole",
)
NOUN = {
    "healthcare": ["Family Medicine", "Dental Group", "Pediatrics", "Physical Therapy", "Eye Care", "Orthodontics",
                   "Urgent Care", "Dermatology", "Veterinary Clinic", "Chiropractic"],
    "legal": ["Law Group", "Legal", "& Partners LLP", "Law Offices", "Attorneys at Law"],
    "accounting": ["CPAs", "Accounting", "Tax & Advisory", "Bookkeeping", "Financial Group"],
    "manufacturing": ["Manufacturing", "Fabrication", "Plastics", "Machining", "Industries", "Components"],
    "construction": ["Builders", "Construction", "Contractors", "Roofing", "Homes", "Excavation"],
    "nonprofit": ["Foundation", "Community Services", "Food Bank", "Youth Alliance", "Housing Trust"],
    "retail": ["Outfitters", "Market", "Supply Co", "Boutique", "Hardware", "Furniture"],
    "professional_services": ["Consulting", "Advisors", "Staffing", "Marketing", "Design Studio", "Partners"],
    "real_estate": ["Realty", "Properties", "Title Company", "Property Management", "Real Estate Group"],
    "engineering": ["Engineering", "Surveying", "Architects", "Structural Engineers", "Environmental"],
    "financial": ["Wealth Management", "Credit Union", "Insurance Agency", "Capital", "Mortgage"],
    "hospitality": ["Hotel", "Restaurant Group", "Brewing Co", "Catering", "Resorts"],
    "logistics": ["Logistics", "Freight", "Transport", "Distribution", "Moving & Storage"],
}
INDUSTRIES = tuple(NOUN)
INDUSTRY_WEIGHTS = np.array([14, 9, 8, 10, 9, 6, 7, 10, 5, 7, 6, 4, 5], dtype=float)
#: (city, state, zip prefix, latitude, longitude, weight)
CITIES = (
    ("Denver", "CO", "802", 39.7392, -104.9903, 30), ("Aurora", "CO", "800", 39.7294, -104.8319, 10),
    ("Lakewood", "CO", "802", 39.7047, -105.0814, 8), ("Boulder", "CO", "803", 40.0150, -105.2705, 8),
    ("Littleton", "CO", "801", 39.6133, -105.0166, 6), ("Golden", "CO", "804", 39.7555, -105.2211, 4),
    ("Castle Rock", "CO", "801", 39.3722, -104.8561, 4), ("Longmont", "CO", "805", 40.1672, -105.1019, 5),
    ("Fort Collins", "CO", "805", 40.5853, -105.0844, 6), ("Colorado Springs", "CO", "809", 38.8339, -104.8214, 7),
    ("Westminster", "CO", "800", 39.8367, -105.0372, 5), ("Englewood", "CO", "801", 39.6478, -104.9878, 5),
    ("Greeley", "CO", "806", 40.4233, -104.7091, 3), ("Cheyenne", "WY", "820", 41.1400, -104.8202, 2),
)
STREETS = ("Main St", "Broadway", "Colfax Ave", "Federal Blvd", "Wadsworth Blvd", "Santa Fe Dr", "Market St",
           "Larimer St", "Pearl St", "Canyon Blvd", "Arapahoe Rd", "Quebec St", "Alameda Ave", "Evans Ave",
           "Hampden Ave", "Belleview Ave", "Kipling St", "Sheridan Blvd", "Lincoln St", "Grant St", "Wynkoop St",
           "Blake St", "Walnut St", "Spruce St", "College Ave", "Academy Blvd", "Union Blvd", "Ward Rd")
SUFFIX = ("", "", "", " LLC", " Inc", " Co", " Group", " PC")


def people(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(first names, last names) as object arrays."""
    return (np.asarray(FIRST, dtype=object)[rng.integers(0, len(FIRST), n)],
            np.asarray(LAST, dtype=object)[rng.integers(0, len(LAST), n)])


def companies(rng: np.random.Generator, industry: np.ndarray) -> np.ndarray:
    """Company names for industry codes (index into INDUSTRIES); unique within one call."""
    out, seen = [], set()
    adj = rng.integers(0, len(ADJ), (len(industry), 4))
    noun = rng.integers(0, 100, (len(industry), 4))
    suf = rng.integers(0, len(SUFFIX), len(industry))
    for i, ind in enumerate(industry):  # one pass over clients/leads (thousands), not over rows
        nouns = NOUN[INDUSTRIES[int(ind)]]
        for k in range(4):
            name = f"{ADJ[adj[i, k]]} {nouns[noun[i, k] % len(nouns)]}"
            if name not in seen:
                break
        else:
            name = f"{name} {i + 2}"
        seen.add(name)
        out.append(name + ("" if "LLP" in name else SUFFIX[suf[i]]))
    return np.asarray(out, dtype=object)


def slug(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())[:18] or "client"
