#!/usr/bin/env bash
# The newsletter demo: install the example's requirements, build a fresh SQLite database with
# `flask db upgrade`, seed it, and serve on http://127.0.0.1:5000. `make demo` runs this after
# `make install` has created .venv with flask-campaign-retry installed.
#
# Environment (all optional):
#   DEMO_HOST, DEMO_PORT   where to serve (default 127.0.0.1 and 5000)
#   DEMO_DB                the SQLite file (default examples/newsletter/instance/newsletter.db);
#                          it is rebuilt on every start unless DEMO_KEEP_DB=1
#   PYTHON                 the interpreter whose environment has the package (default .venv)
#   REDIS_URL or CAMPAIGN_RETRY_REDIS_URL
#                          send through this Redis with a real `flask campaign-retry worker`
#                          process (default: the extension's embedded queue, in the web process)
#   DEMO_PROVIDER=smtp     send over SMTP (the built-in smtp provider, configured through
#                          Flask-Mail's MAIL_* keys) to the SMTP sink of
#                          flask_campaign_retry.testing, started here on DEMO_SMTP_PORT
#                          (default 2525); it refuses @bounce.example.com addresses with 550
#   FLASK_*                any app setting, e.g. FLASK_CAMPAIGN_RETRY_SANDBOX_LATENCY=0
set -euo pipefail

example_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_dir="$(cd "$example_dir/../.." && pwd)"
cd "$repo_dir"

python="${PYTHON:-$repo_dir/.venv/bin/python}"
host="${DEMO_HOST:-127.0.0.1}"
port="${DEMO_PORT:-5000}"
db_file="${DEMO_DB:-$example_dir/instance/newsletter.db}"

if [[ ! -x "$python" ]]; then
    echo "No Python environment at $python: run \`make install\` (or \`make demo\`) first." >&2
    exit 1
fi
if ! "$python" -c "import flask_login, flask_migrate, fakeredis" 2>/dev/null; then
    echo "Installing the example's requirements (flask-login) ..."
    "$python" -m pip install --quiet -r "$example_dir/requirements.txt"
fi

export PYTHONPATH="$example_dir${PYTHONPATH:+:$PYTHONPATH}"
export FLASK_APP=newsletter
export FLASK_SQLALCHEMY_DATABASE_URI="sqlite:///$db_file"
flask=("$python" -m flask)

mkdir -p "$(dirname "$db_file")"
if [[ "${DEMO_KEEP_DB:-0}" != 1 ]]; then
    rm -f "$db_file"
fi
echo "Building the schema: flask db upgrade ($db_file)"
"${flask[@]}" db upgrade
echo "Seeding: flask seed"
"${flask[@]}" seed

pids=()
stop() {
    trap - INT TERM EXIT
    if ((${#pids[@]})); then
        kill "${pids[@]}" 2>/dev/null || true
        wait "${pids[@]}" 2>/dev/null || true
    fi
}
trap stop EXIT
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM

provider="the sandbox provider (no email leaves the machine)"
if [[ "${DEMO_PROVIDER:-sandbox}" == smtp ]]; then
    smtp_port="${DEMO_SMTP_PORT:-2525}"
    "$python" -m flask_campaign_retry.testing.smtp_sink_server --port "$smtp_port" \
        --refuse '@bounce\.example\.com$' &
    pids+=($!)
    export FLASK_CAMPAIGN_RETRY_PROVIDER=smtp FLASK_MAIL_SERVER=127.0.0.1
    export FLASK_MAIL_PORT="$smtp_port" FLASK_MAIL_USE_TLS=false FLASK_MAIL_USE_SSL=false
    provider="SMTP (MAIL_SERVER=127.0.0.1:$smtp_port, the test sink: mail is kept in memory)"
elif [[ "${DEMO_PROVIDER:-sandbox}" != sandbox ]]; then
    echo "DEMO_PROVIDER must be sandbox or smtp, got ${DEMO_PROVIDER}." >&2
    exit 2
fi

redis_url="${CAMPAIGN_RETRY_REDIS_URL:-${REDIS_URL:-}}"
if [[ -n "$redis_url" ]]; then
    queue="Redis at $redis_url, with a \`flask campaign-retry worker\` process"
    "${flask[@]}" campaign-retry worker &
    pids+=($!)
else
    queue="the embedded development queue (set REDIS_URL to use Redis and a real worker)"
fi

cat <<BANNER

  Newsletter demo on http://$host:$port   (Ctrl-C stops it)

  Sign in as  alice@example.com / alice-demo   or   bob@example.com / bob-demo
  Queue:      $queue
  Provider:   $provider

  What to click (as Alice):
    * "Weekly digest #12" is PARTIALLY_SENT: 50 recipients hit a provider outage (503).
      Press "Retry (3 attempts left)" and watch it go SENDING -> SENT, resending only to them.
    * "VIP early access" FAILED on the provider's quota (429, "try again after ...").
      Press "Clone to a new draft", then send the draft.
    * "Spring sale preview" is a draft: press "Send".
  As Bob: "October recap" failed over a day ago, so its retry window has ended; the panel says
  so. Opening one of Alice's campaigns as Bob answers 403.

BANNER

"${flask[@]}" run --host "$host" --port "$port" --no-reload &
pids+=($!)
wait "${pids[-1]}"
