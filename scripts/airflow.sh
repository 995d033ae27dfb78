#!/usr/bin/env bash
# Local Airflow for the lakehouse: `scripts/airflow.sh start|stop|status|day` (`make airflow`, `make airflow-stop`).
#
# start: runs `airflow standalone` (SQLite, LocalExecutor, simple auth manager) with the project's DAGs,
#        AIRFLOW_HOME=.airflow/ inside the project and parallelism sized for a 2-core machine; waits until
#        the API answers, then prints the URL and the admin password. The PIDs it started (standalone in
#        its own session, and its scheduler, dag-processor, api-server and triggerer) are recorded in
#        $AIRFLOW_HOME/standalone.pids, and everything it starts carries MSP_AIRFLOW_INSTANCE=<id> in its
#        environment (id in $AIRFLOW_HOME/standalone.instance): task processes open sessions of their own,
#        so the process group alone does not find them.
# stop:  stops exactly those processes: components first (SIGTERM), then standalone itself, then what is
#        left of its descendants, process group and instance (SIGTERM, then SIGKILL after the timeout).
# day [START [END]]: through the REST API of the running instance, unpause the ingestion, event and agent DAGs,
#        trigger msp_ingest for those export days (default: yesterday), wait until it and every DAG run it set
#        off through asset events have finished, and print each run and the wall time from trigger to the end
#        of the last run (what "a day through Airflow" costs). Exit 1 if a run failed.
#
# Environment (all optional): AIRFLOW_HOME, MSP_AIRFLOW_PORT (8080; not 8793 or 8794, Airflow's log servers),
# MSP_AIRFLOW_HOST (127.0.0.1),
# MSP_AIRFLOW_PARALLELISM (4), MSP_AIRFLOW_START_TIMEOUT (120 s), MSP_AIRFLOW_STOP_TIMEOUT (30 s),
# MSP_AIRFLOW_DAY_TIMEOUT (1800 s, for `day`),
# MSP_HOME (the lake and landing area the DAGs use; default .msp/ in the project), VENV (.venv).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$ROOT/.airflow}"
PORT="${MSP_AIRFLOW_PORT:-8080}"
HOST="${MSP_AIRFLOW_HOST:-127.0.0.1}"
PIDFILE="$AIRFLOW_HOME/standalone.pids"
INSTANCE_FILE="$AIRFLOW_HOME/standalone.instance"
LOG="$AIRFLOW_HOME/standalone.log"
START_TIMEOUT="${MSP_AIRFLOW_START_TIMEOUT:-120}"
STOP_TIMEOUT="${MSP_AIRFLOW_STOP_TIMEOUT:-30}"
URL="http://$HOST:$PORT"

configure() {
  if [ ! -x "$VENV/bin/airflow" ]; then
    echo "error: $VENV/bin/airflow not found: run \`make install\` first" >&2
    exit 1
  fi
  # standalone starts its components as `airflow ...`: the venv's bin must be on PATH.
  export PATH="$VENV/bin:$PATH"
  export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$ROOT/dags}"
  export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
  export AIRFLOW__CORE__PARALLELISM="${MSP_AIRFLOW_PARALLELISM:-4}"
  export AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG="${AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG:-$AIRFLOW__CORE__PARALLELISM}"
  export AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES="${AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES:-1}"
  export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="${AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL:-30}"
  export AIRFLOW__API__HOST="$HOST"
  export AIRFLOW__API__PORT="$PORT"
  export AIRFLOW__API__WORKERS="${AIRFLOW__API__WORKERS:-1}"
  # Task processes report to the API server; its 5 s default times out when four tasks start at once on two
  # busy cores (the task is then killed before it ran, and retried a minute later).
  export AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="${AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT:-60}"
  # A task process parses its DAG file again; Airflow gives it 30 s, which a busy 2-core machine exceeds
  # (the task is then rescheduled a minute later as "DAG not found").
  export AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT="${AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT:-120}"
  export AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT="${AIRFLOW__DAG_PROCESSOR__DAG_FILE_PROCESSOR_TIMEOUT:-180}"
  # Asset-triggered runs are created by the scheduler loop: keep it responsive.
  export AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="${AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC:-2}"
  export AIRFLOW__API__BASE_URL="${AIRFLOW__API__BASE_URL:-$URL}"
  export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-$URL/execution/}"
  # The pipeline's own settings: the lake and landing area the tasks read and write.
  export MSP_HOME="${MSP_HOME:-$ROOT/.msp}"
  if [ -z "${MSP_CONFIG:-}" ] && [ -f "$ROOT/msp.toml" ]; then export MSP_CONFIG="$ROOT/msp.toml"; fi
  export SPARK_LOCAL_IP="${SPARK_LOCAL_IP:-127.0.0.1}"
  export PYTHONHASHSEED="${PYTHONHASHSEED:-0}"
}

# Alive and not a zombie (standalone does not reap the components it started).
alive() {
  local state
  state="$(ps -o stat= -p "$1" 2>/dev/null | tr -d ' ')" || return 1
  [ -n "$state" ] && [ "${state:0:1}" != "Z" ]
}

# Live PIDs of the process group $1 (standalone runs in its own session: that is everything it started).
group_pids() { ps -eo pid=,pgid=,stat= | awk -v g="$1" '$2 == g && $1 != g && $3 !~ /^Z/ {print $1}'; }

# Every live process whose environment carries our instance id (Linux /proc; none elsewhere).
instance_pids() {
  local id="$1" f pid
  [ -n "$id" ] && [ -d /proc ] || return 0
  for f in $(grep -lzx "MSP_AIRFLOW_INSTANCE=$id" /proc/[0-9]*/environ 2>/dev/null); do
    pid="${f#/proc/}"; pid="${pid%/environ}"
    [ "$pid" != "$$" ] && alive "$pid" && echo "$pid"
  done
  return 0
}

# Live descendants of $1 (children first found, then theirs).
descendants() {
  ps -eo pid=,ppid= | awk -v root="$1" '
    { parent[$1] = $2 }
    END { for (p in parent) { q = parent[p]; while (q != "" && q != 0 && q != 1) { if (q == root) { print p; break }; q = parent[q] } } }'
}

recorded_parent() { [ -f "$PIDFILE" ] && head -n1 "$PIDFILE" | tr -cd '0-9' || true; }
recorded_instance() { [ -f "$INSTANCE_FILE" ] && tr -cd 'A-Za-z0-9-' <"$INSTANCE_FILE" || true; }

is_ours() {  # the recorded PID is still our standalone (a recycled PID must not be signalled)
  local pid="$1"
  alive "$pid" || return 1
  [ "$(ps -o pgid= -p "$pid" | tr -d ' ')" = "$pid" ] || return 1
  ps -o args= -p "$pid" | grep -q "airflow standalone"
}

wait_gone() {  # wait_gone TIMEOUT PID... : wait until none of the PIDs is alive
  local timeout="$1"; shift
  local deadline=$((SECONDS + timeout)) pid left
  while [ "$SECONDS" -lt "$deadline" ]; do
    left=0
    for pid in "$@"; do alive "$pid" && left=1; done
    [ "$left" = 0 ] && return 0
    sleep 0.5
  done
  return 1
}

password() {
  local file="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
  if [ "$(echo "${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS:-false}" | tr 'A-Z' 'a-z')" = "true" ]; then
    echo "(none: AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True, no login)"
  elif [ -f "$file" ]; then
    "$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1])).get("admin", "?"))' "$file"
  else
    echo "? (not generated yet: see $file)"
  fi
}

start() {
  configure
  local parent
  parent="$(recorded_parent)"
  if [ -n "$parent" ] && is_ours "$parent"; then
    echo "Airflow is already running (PID $parent): $URL   user admin, password $(password)"
    return 0
  fi
  if (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null; then
    echo "error: port $PORT on $HOST is in use; set MSP_AIRFLOW_PORT to another port" >&2
    exit 1
  fi
  # the task runner's and the triggerer's log servers bind these once standalone runs: the API server would lose
  local log_ports="${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-8793} ${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-8794}"
  if [[ " $log_ports " == *" $PORT "* ]]; then
    echo "error: port $PORT is one of Airflow's log-server ports ($log_ports); set MSP_AIRFLOW_PORT to another port" >&2
    exit 1
  fi
  mkdir -p "$AIRFLOW_HOME" "$MSP_HOME"
  : >"$LOG"
  local instance="msp-$(date +%s)-$$-$RANDOM"
  echo "$instance" >"$INSTANCE_FILE"
  # A new session for standalone and its components; the instance id marks everything they start.
  parent="$(MSP_AIRFLOW_INSTANCE="$instance" "$VENV/bin/python" -c '
import subprocess, sys
log = open(sys.argv[1], "ab")
p = subprocess.Popen(["airflow", "standalone"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                     start_new_session=True)
print(p.pid)' "$LOG")"
  echo "$parent" >"$PIDFILE"
  echo "Starting Airflow standalone (PID $parent, AIRFLOW_HOME=$AIRFLOW_HOME, log $LOG) ..."
  local deadline=$((SECONDS + START_TIMEOUT))
  until curl -fsS -o /dev/null "$URL/api/v2/monitor/health" 2>/dev/null; do
    if ! alive "$parent"; then
      echo "error: airflow standalone exited; last lines of $LOG:" >&2
      tail -n 30 "$LOG" >&2
      stop_pids || true
      exit 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "error: Airflow did not answer on $URL within ${START_TIMEOUT}s; last lines of $LOG:" >&2
      tail -n 30 "$LOG" >&2
      stop_pids || true
      exit 1
    fi
    sleep 1
  done
  # Record the components too (direct children of standalone).
  { echo "$parent"; ps -o pid= --ppid "$parent" | tr -d ' '; } >"$PIDFILE"
  echo
  echo "Airflow is running: $URL"
  echo "  user:     admin"
  echo "  password: $(password)"
  echo "  DAGs:     $AIRFLOW__CORE__DAGS_FOLDER   lake: $MSP_HOME"
  echo "  PIDs:     $(tr '\n' ' ' <"$PIDFILE")(in $PIDFILE)"
  echo "Stop it with: make airflow-stop"
}

# stop_leftovers PID... : SIGTERM, wait, SIGKILL what is still alive.
stop_leftovers() {
  local pid left=""
  for pid in "$@"; do alive "$pid" && left="$left $pid"; done
  [ -n "$left" ] || return 0
  echo "Stopping leftover processes:$left"
  kill -TERM $left 2>/dev/null || true
  if ! wait_gone "$STOP_TIMEOUT" $left; then
    local still=""
    for pid in $left; do alive "$pid" && still="$still $pid"; done
    echo "SIGKILL for what did not stop within ${STOP_TIMEOUT}s:$still"
    kill -KILL $still 2>/dev/null || true
    wait_gone 5 $still || true
  fi
}

stop_pids() {
  local parent instance children pid tree
  parent="$(recorded_parent)"
  instance="$(recorded_instance)"
  if [ -z "$parent" ]; then
    echo "Airflow is not running (no $PIDFILE)"
    stop_leftovers $(instance_pids "$instance")
    rm -f "$INSTANCE_FILE"
    return 0
  fi
  if ! is_ours "$parent"; then
    echo "Airflow is not running (standalone PID $parent is gone)"
    stop_leftovers $(group_pids "$parent") $(instance_pids "$instance")
    rm -f "$PIDFILE" "$INSTANCE_FILE"
    return 0
  fi
  tree="$(descendants "$parent")"  # before anything is signalled: orphans lose their parent link
  # Components first (standalone does not forward SIGTERM: its children would be orphaned).
  children="$(ps -o pid= --ppid "$parent" | tr -d ' ')"
  children="$(printf '%s\n' $children $(tail -n +2 "$PIDFILE") | sort -u)"
  local running=""
  for pid in $children; do
    alive "$pid" && [ "$(ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ')" = "$parent" ] && running="$running $pid"
  done
  echo "Stopping Airflow: components$running, then standalone $parent"
  [ -n "$running" ] && kill -TERM $running 2>/dev/null || true
  [ -n "$running" ] && wait_gone "$STOP_TIMEOUT" $running || true
  kill -TERM "$parent" 2>/dev/null || true
  wait_gone 10 "$parent" || true
  # Whatever is left: task processes (sessions of their own), Spark JVMs, a component that hung.
  stop_leftovers $(printf '%s\n' "$parent" $tree $(group_pids "$parent") $(instance_pids "$instance") | sort -u)
  rm -f "$PIDFILE" "$INSTANCE_FILE"
  echo "Airflow stopped"
}

day() {
  configure
  local parent
  parent="$(recorded_parent)"
  if [ -z "$parent" ] || ! is_ours "$parent"; then
    echo "error: Airflow is not running: start it with \`$0 start\`" >&2
    exit 1
  fi
  "$VENV/bin/python" - "$URL" "$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated" \
    "${MSP_AIRFLOW_DAY_TIMEOUT:-1800}" "$parent" "$@" <<'PY'
import json, os, sys, time, urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

base, password_file, timeout, parent, *days = sys.argv[1:]


def instance_cpu() -> float:
    """CPU seconds of this Airflow instance so far: standalone and every live descendant (by parent PID: the
    workers' process titles overwrite their environment, so the instance marker cannot be read there), with
    the CPU of the children they reaped (finished task processes); 0 where there is no /proc."""
    stats = {}
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[proc.name] = (fields[1], sum(int(fields[i]) for i in (11, 12, 13, 14)))  # utime stime cutime cstime
    tree, grew = {parent}, True
    while grew:
        more = {pid for pid, (ppid, _) in stats.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(stats[p][1] for p in tree if p in stats) / os.sysconf("SC_CLK_TCK")


start = days[0] if days else (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
end = days[1] if len(days) > 1 else start
date.fromisoformat(start), date.fromisoformat(end)  # refuse a typo before anything is triggered


def call(method, path, body=None, token=None):
    req = urllib.request.Request(base + path, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for attempt in range(5):
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:  # SQLite busy on a loaded machine: retry
            if exc.code != 503 or attempt == 4:
                raise
            time.sleep(2 + 2 * attempt)
        except (TimeoutError, urllib.error.URLError):  # one API worker, busy: retry
            if attempt == 4:
                raise
            time.sleep(2 + 2 * attempt)


password = json.load(open(password_file))["admin"]
token = call("POST", "/auth/token", {"username": "admin", "password": password})["access_token"]
api = lambda method, path, body=None: call(method, path, body, token)  # noqa: E731
stamp = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None  # noqa: E731
dags = [d for d in api("GET", "/api/v2/dags?tags=msp&limit=100")["dags"]]
tags = {d["dag_id"]: {t["name"] if isinstance(t, dict) else t for t in d["tags"]} for d in dags}
chained = [dag_id for dag_id, names in tags.items() if "agent" in names or dag_id == "msp_events"]
for dag_id in chained:
    api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
ingest = api("GET", "/api/v2/dags/msp_ingest")
# at the logical date the scheduler would pick next, so that unpausing creates no other run
cpu0, load0 = instance_cpu(), os.getloadavg()[0]
t0 = datetime.now(UTC)
run = api("POST", "/api/v2/dags/msp_ingest/dagRuns",
          {"logical_date": ingest["next_dagrun_logical_date"], "conf": {"start": start, "end": end}})
api("PATCH", "/api/v2/dags/msp_ingest", {"is_paused": False})
print(f"triggered msp_ingest for {start}..{end} at {t0:%H:%M:%S} (run {run['dag_run_id']})", flush=True)
deadline, quiet_since, seen = time.monotonic() + float(timeout), None, {}
while time.monotonic() < deadline:
    runs = [r for dag_id in ["msp_ingest", *chained]
            for r in api("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=-run_after&limit=50")["dag_runs"]]
    runs = [r for r in runs if r["dag_run_id"] == run["dag_run_id"]
            or (r["run_type"] == "asset_triggered" and stamp(r["run_after"]) >= t0)]
    for r in runs:
        key = (r["dag_id"], r["dag_run_id"])
        if r["state"] in ("success", "failed") and key not in seen:
            seen[key] = r
            took = (stamp(r["end_date"]) - stamp(r["start_date"])).total_seconds() if r["start_date"] else 0
            print(f"  {r['dag_id']:<16} {r['run_type']:<16} {r['state']:<8} {took:6.1f} s, ended "
                  f"{(stamp(r['end_date']) - t0).total_seconds():6.1f} s after the trigger", flush=True)
    busy = [r for r in runs if r["state"] not in ("success", "failed")]
    if busy or not seen:
        quiet_since = None
    elif quiet_since is None:
        quiet_since = time.monotonic()
    elif time.monotonic() - quiet_since > 15:  # nothing started for 15 s: the chain is done
        break
    time.sleep(2)
else:
    sys.exit(f"error: still running after {timeout} s: {[r['dag_id'] for r in busy]}")
last = max(stamp(r["end_date"]) for r in seen.values())
failed = [k for k, r in seen.items() if r["state"] != "success"]
cpu = instance_cpu() - cpu0
print(f"a day through Airflow: {(last - t0).total_seconds():.1f} s wall from trigger to the end of the last of "
      f"{len(seen)} DAG runs" + (f"; FAILED: {failed}" if failed else ""))
print(f"  CPU of the Airflow instance meanwhile: {cpu:.0f} s ({cpu / (os.cpu_count() or 1):.0f} s of wall on "
      f"{os.cpu_count()} cores if it had them to itself); load average {load0:.1f} -> {os.getloadavg()[0]:.1f}")
sys.exit(1 if failed else 0)
PY
}

status() {
  local parent
  parent="$(recorded_parent)"
  if [ -n "$parent" ] && is_ours "$parent"; then
    echo "running: $URL (PIDs $(tr '\n' ' ' <"$PIDFILE"))"
  else
    echo "not running"
    return 1
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop_pids ;;
  status) status ;;
  day) shift; day "$@" ;;
  *) echo "usage: $0 start|stop|status|day [START [END]]" >&2; exit 2 ;;
esac
