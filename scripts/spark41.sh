#!/usr/bin/env bash
# The Spark-engine tests once more on pyspark 4.1.x: AWS Glue 6.0 runs Spark 4.1.1, the project pins 4.2.0.
#
#   scripts/spark41.sh [pytest arguments]          (or: make test-spark41)
#
# Builds (once; again when pyproject.toml or constraints.txt change) a venv of its own, SPARK41_VENV
# (default build/venv-spark41), with the versions of constraints.txt except pyspark==$PYSPARK (default 4.1.1):
# the project's requirements and its dev extra are installed, not the project itself (its own requirement pins
# pyspark 4.2.0, which pip would refuse beside 4.1.1): a .pth file puts the checkout on the venv's path. Then
# it runs the tests that run code on a Spark session: the jobs through Ibis's pyspark backend against DuckDB
# (tests/*/test_spark_parity.py), the quality gate on the spark engine against DuckDB
# (tests/quality/test_engines.py), the datasets' Spark schemas (tests/quality/test_contracts.py).
# Minutes, not part of `make test`. PYTHON picks the interpreter (default python3; Glue 6.0 has 3.13).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PYSPARK=${PYSPARK:-4.1.1}
VENV=${SPARK41_VENV:-build/venv-spark41}
TESTS=(tests/*/test_spark_parity.py tests/quality/test_engines.py tests/quality/test_contracts.py)
export SPARK_LOCAL_IP=${SPARK_LOCAL_IP:-127.0.0.1} PYTHONHASHSEED=${PYTHONHASHSEED:-0}

stamp="$VENV/.installed-pyspark-$PYSPARK"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  MSP_SKIP_SYSTEM_PACKAGES=1 scripts/prereqs.sh "$PYTHON"  # Python 3.11+, Java 17+
  test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
  sed "s/^pyspark==.*/pyspark==$PYSPARK/" constraints.txt > "$VENV/constraints.txt"
  "$VENV/bin/python" - "$PYSPARK" > "$VENV/requirements.txt" <<'EOF'
import re, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
    print(re.sub(r"==.*", f"=={sys.argv[1]}", req) if re.match(r"pyspark\b", req) else req)
EOF
  echo "installing the project's requirements with pyspark==$PYSPARK into $VENV ..."
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -c "$VENV/constraints.txt" -r "$VENV/requirements.txt"
  "$VENV/bin/python" -c 'import site, sys; open(site.getsitepackages()[0] + "/msp-checkout.pth", "w").write(sys.argv[1] + "\n")' "$PWD"
  touch "$stamp"
fi
"$VENV/bin/python" -c "import pyspark, sys; v = pyspark.__version__; print('pyspark', v, 'on Python', sys.version.split()[0]); sys.exit(v != sys.argv[1])" "$PYSPARK"
exec "$VENV/bin/python" -m pytest -q --durations=10 "${TESTS[@]}" "$@"
