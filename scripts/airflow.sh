#!/usr/bin/env bash
# Local Airflow for the lakehouse: `scripts/airflow.sh start|stop|status` (`make airflow`, `make airflow-stop`).
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
#
# Environment (all optional): AIRFLOW_HOME, MSP_AIRFLOW_PORT (8080), MSP_AIRFLOW_HOST (127.0.0.1),
# MSP_AIRFLOW_PARALLELISM (4), MSP_AIRFLOW_START_TIMEOUT (120 s), MSP_AIRFLOW_STOP_TIMEOUT (30 s),
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
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
