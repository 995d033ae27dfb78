"""Reference data of the simulated market: products, ticket taxonomy, software titles, licences, vendors."""

from __future__ import annotations

#: agreement additions: code, name, unit basis, monthly unit cost (cents), monthly unit price (cents), take-up
ADDITIONS = (
    ("M365-BP", "Microsoft 365 Business Premium", "users", 2200, 2640, 0.62),
    ("M365-BS", "Microsoft 365 Business Standard", "users", 1250, 1500, 0.26),
    ("BKP-EP", "Endpoint Backup", "workstations", 350, 600, 0.55),
    ("BKP-SRV", "Server Backup", "servers", 4500, 7900, 0.75),
    ("EDR", "Managed EDR", "devices", 420, 850, 0.68),
    ("EMAIL-SEC", "Email Security", "users", 180, 350, 0.52),
    ("SAT", "Security Awareness Training", "users", 120, 275, 0.33),
    ("FW-SUB", "Firewall Subscription", "sites", 3800, 6500, 0.45),
)

CATEGORIES = ("hardware", "software", "network", "security", "email_m365", "account_access", "printing",
              "backup", "server", "onboarding")
CATEGORY_WEIGHTS = (0.14, 0.16, 0.09, 0.06, 0.16, 0.17, 0.07, 0.04, 0.06, 0.05)
#: per category: required skill (index into staff.SKILLS), median hours, P(onsite)
CATEGORY_SKILL = (0, 0, 2, 3, 1, 1, 7, 6, 4, 0)
CATEGORY_HOURS = (1.1, 0.8, 1.4, 1.6, 0.6, 0.4, 0.7, 1.0, 1.8, 1.5)
CATEGORY_ONSITE = (0.30, 0.03, 0.22, 0.04, 0.0, 0.0, 0.30, 0.02, 0.10, 0.25)
PRIORITIES = ("low", "medium", "high", "critical")
#: per category: P(priority)
PRIORITY_P = (
    (0.30, 0.50, 0.17, 0.03), (0.35, 0.50, 0.13, 0.02), (0.15, 0.45, 0.30, 0.10), (0.10, 0.35, 0.35, 0.20),
    (0.35, 0.50, 0.13, 0.02), (0.40, 0.48, 0.11, 0.01), (0.45, 0.45, 0.09, 0.01), (0.20, 0.50, 0.25, 0.05),
    (0.10, 0.40, 0.35, 0.15), (0.30, 0.60, 0.10, 0.00),
)
#: SLA minutes (response, resolution) per priority, standard tier; premium halves them
SLA_MINUTES = ((480, 4320), (240, 1440), (60, 480), (30, 240))
SUBJECTS = {
    "hardware": ("Laptop will not power on", "Docking station not detecting monitors", "Keyboard not working",
                 "New monitor setup", "Laptop running hot and slow", "Replace failing hard drive"),
    "software": ("Application crashes on start", "Install request: Adobe Acrobat", "QuickBooks update failed",
                 "Browser keeps redirecting", "Line-of-business app error", "Update request"),
    "network": ("Internet down at office", "Wi-Fi drops in conference room", "VPN will not connect",
                "Slow network at branch", "Switch port dead", "Firewall rule request"),
    "security": ("Suspicious e-mail reported", "EDR alert on workstation", "Possible compromised account",
                 "MFA reset request", "Phishing link clicked", "Malware detected"),
    "email_m365": ("Cannot send e-mail", "Shared mailbox access", "Teams meeting issue", "OneDrive not syncing",
                   "Outlook keeps asking for password", "Distribution list change"),
    "account_access": ("Password reset", "Account locked out", "New user access request",
                       "Remove access for leaver", "Permission change on shared drive", "MFA new phone"),
    "printing": ("Printer offline", "Scanner to e-mail not working", "Print jobs stuck", "New printer install"),
    "backup": ("Backup job failed", "Restore deleted files", "Backup storage warning", "Backup verification"),
    "server": ("Server disk space low", "Domain controller replication error", "Server reboot required",
               "File server slow", "Hyper-V host alert", "Certificate expiring"),
    "onboarding": ("New hire setup", "Workstation build for new employee", "Onboard new office staff"),
}
SOURCES = ("email", "phone", "portal", "monitoring")

#: software titles: name, publisher, P(on workstation), P(on server), release cadence days, version style
SOFTWARE = (
    ("Microsoft Windows 11 Pro", "Microsoft Corporation", 0.72, 0.0, 122, "win11"),
    ("Microsoft Windows 10 Pro", "Microsoft Corporation", 0.28, 0.0, 122, "win10"),
    ("Microsoft Windows Server 2022 Standard", "Microsoft Corporation", 0.0, 1.0, 122, "win2022"),
    ("Microsoft 365 Apps for business", "Microsoft Corporation", 0.93, 0.05, 91, "m365apps"),
    ("Google Chrome", "Google LLC", 0.82, 0.25, 112, "chrome"),
    ("Microsoft Edge", "Microsoft Corporation", 1.0, 1.0, 112, "edge"),
    ("Adobe Acrobat Reader", "Adobe Inc.", 0.75, 0.1, 120, "acroread"),
    ("Adobe Acrobat Pro", "Adobe Inc.", 0.14, 0.0, 120, "acropro"),
    ("Zoom Workplace", "Zoom Video Communications, Inc.", 0.45, 0.0, 120, "zoom"),
    ("7-Zip", "Igor Pavlov", 0.35, 0.6, 400, "7zip"),
    ("Sentry EDR Sensor", "Sentry Security Inc.", 0.68, 0.68, 180, "edr"),
    ("Atlas RMM Agent", "Atlas Remote Inc.", 1.0, 1.0, 120, "rmm"),
    ("AutoCAD LT 2024", "Autodesk, Inc.", 0.0, 0.0, 365, "autocad"),
    ("QuickBooks Desktop Enterprise", "Intuit Inc.", 0.0, 0.0, 365, "qb"),
    ("AnyDesk", "AnyDesk Software GmbH", 0.0, 0.0, 180, "anydesk"),
    ("TeamViewer", "TeamViewer Germany GmbH", 0.0, 0.0, 180, "teamviewer"),
)
REMOTE_TOOLS = (14, 15)  #: unapproved remote-access tools (a churn canary in the RMM)

#: Microsoft 365 SKUs: part number, skuId, name, monthly price cents (annual NCE), workloads flags
M365_SKUS = (
    ("SPB", "cbdc14ab-d96c-4c30-b9f4-6ada7cdc1d46", "Microsoft 365 Business Premium", 2200),
    ("O365_BUSINESS_PREMIUM", "f245ecc8-75af-4f8e-b61f-27d8114de5f3", "Microsoft 365 Business Standard", 1250),
    ("SPE_E3", "05e9a617-0261-4cee-bb44-138d3ef5d965", "Microsoft 365 E3", 3600),
    ("SPE_E5", "06ebc4ee-1bb5-47dd-8120-11324bc54e06", "Microsoft 365 E5", 5700),
    ("VISIOCLIENT", "c5928f49-12ba-48f7-ada3-0d743a3601d5", "Visio Plan 2", 1500),
    ("POWER_BI_PRO", "f8a1db68-be16-40ed-86d5-cb42ce701560", "Power BI Pro", 1400),
    ("MCOEV", "e43b5b99-8dfb-405f-9987-dc307f34bcbd", "Microsoft Teams Phone Standard", 1000),
)
#: other licences resold per client: vendor, sku id, part number, name, monthly price cents, software index
OTHER_LICENCES = (
    ("Adobe", "65322591CA01A12", "ACROBAT-PRO-TEAMS", "Adobe Acrobat Pro for teams", 2399, 7),
    ("Autodesk", "057P1-WWN886-L563", "AUTOCAD-LT", "AutoCAD LT subscription", 6000, 12),
    ("Intuit", "QBES-24-SILVER", "QB-ENTERPRISE", "QuickBooks Enterprise Silver", 11000, 13),
)

DEPARTMENTS = ("service_desk", "projects", "security_ops", "sales_marketing", "finance_admin", "hosting")

#: the MSP's suppliers: name, category, expense category, department, monthly recurring USD (0: usage only),
#: usage purchases per business day (at the small scale), median usage amount USD, has a contract
VENDORS = (
    ("Atlas Remote Inc.", "software", "software_subscriptions", "service_desk", 2400, 0.0, 0, True),
    ("HaloDesk Software", "software", "software_subscriptions", "service_desk", 1800, 0.0, 0, True),
    ("Sentry Security Inc.", "security", "software_subscriptions", "security_ops", 3100, 0.0, 0, True),
    ("Summit Hardware Supply", "hardware", "hardware", "projects", 0, 1.6, 420, True),
    ("Front Range Fiber", "telecom", "telecom", "finance_admin", 950, 0.0, 0, True),
    ("Copper Office Properties", "facilities", "office", "finance_admin", 7800, 0.0, 0, True),
    ("Blue Mesa Marketing", "marketing", "marketing", "sales_marketing", 2600, 0.3, 350, True),
    ("Trailhead Training", "training", "training", "service_desk", 0, 0.35, 480, False),
    ("VaultPoint Backup", "software", "software_subscriptions", "hosting", 2900, 0.0, 0, True),
    ("Peak Staffing Partners", "professional_services", "contractors", "projects", 0, 0.5, 1150, True),
    ("Granite Insurance Group", "insurance", "insurance", "finance_admin", 1450, 0.0, 0, True),
    ("Harbor & Lane CPAs", "professional_services", "professional_services", "finance_admin", 2100, 0.0, 0, True),
    ("Metro Fleet Fuel", "travel", "travel", "service_desk", 0, 2.2, 58, False),
    ("Officeworks Supply", "office", "office", "finance_admin", 0, 0.8, 95, False),
    ("ClearTalk Voice", "telecom", "telecom", "service_desk", 640, 0.0, 0, True),
    ("Redline Penetration Testing", "security", "professional_services", "security_ops", 0, 0.08, 4200, True),
    ("SIEMWorks", "security", "software_subscriptions", "security_ops", 1900, 0.2, 260, True),
    ("Colorado Colocation Center", "cloud", "hosting", "hosting", 4200, 0.0, 0, True),
    ("LinkedBoost Ads", "marketing", "marketing", "sales_marketing", 0, 0.9, 210, False),
    ("Denver Tech Expo", "marketing", "events", "sales_marketing", 0, 0.05, 3800, False),
    ("Rocky Mountain Travel", "travel", "travel", "sales_marketing", 0, 0.4, 640, False),
    ("ITDocs Cloud", "software", "software_subscriptions", "service_desk", 520, 0.0, 0, True),
    ("MailShield", "security", "software_subscriptions", "security_ops", 880, 0.0, 0, True),
    ("Pinnacle Legal LLP", "professional_services", "professional_services", "finance_admin", 0, 0.1, 1800, True),
    ("CloudStream Distribution", "distributor", "software_subscriptions", "hosting", 0, 0.6, 900, True),
)
#: vendors whose first purchase is a planted "new service" anomaly
NEW_SERVICE_VENDORS = (
    ("Quantum Copilot AI", "software", "software_subscriptions"), ("Nimbus Observability", "software",
                                                                   "software_subscriptions"),
    ("Beacon Field Services", "professional_services", "contractors"), ("Vertex Data Labs", "software",
                                                                        "software_subscriptions"),
    ("Orbit Secure Access", "security", "software_subscriptions"), ("Lumen Analytics", "software",
                                                                    "software_subscriptions"),
)
EXPENSE_CATEGORIES = ("software_subscriptions", "hardware", "telecom", "office", "marketing", "training",
                      "contractors", "insurance", "professional_services", "travel", "hosting", "events")
