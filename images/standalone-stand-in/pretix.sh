#!/bin/sh
# Stand-in for pretix/standalone's entrypoint (deployment/docker/pretix.bash), for tests.
# Same preamble and dispatch as the real one; instead of running pretix it records each call:
#   /data/stand-in-calls.log       one line per call: time, uid, groups, AUTOMIGRATE, NUM_WORKERS, args
#   /data/stand-in-migrations.log  one line per migrate the real entrypoint would run
# `shell -c` answers the question pretix-plugin asks (which plugins pretix loaded) from what the
# stand-in's pip3 installed (/pretix/stand-in-site-packages).
# `all` and `web` serve an empty 200 on /healthcheck/ (port 80) until stopped; `webworker` and
# `taskworker` block until stopped. Port 80 as uid 15371 works because Docker >= 20.10 sets
# net.ipv4.ip_unprivileged_port_start=0 in containers (the real image binds it as root via sudo).
export DATA_DIR=/data/ HOME=/pretix
AUTOMIGRATE=${AUTOMIGRATE:-yes}
NUM_WORKERS=${NUM_WORKERS:-$((2 * $(nproc)))}
export NUM_WORKERS
mkdir -p /data/logs /data/media

record() {
    echo "$(date +%s) uid=$(id -u) groups=$(id -G | tr ' ' ',') AUTOMIGRATE=$AUTOMIGRATE NUM_WORKERS=$NUM_WORKERS $*" >> /data/stand-in-calls.log
    echo "pretix stand-in: $*" >&2
}

# The line pretix-plugin's script prints in the real image, made from the stand-in pip3's records.
plugins_answer() {
    loaded='"pretix.plugins.sendmail"' entry_points='' installed=''
    if [ -f /pretix/stand-in-site-packages ]; then
        while read -r name version module; do
            installed="$installed, \"$name\": \"$version\""
            if [ "$module" != "-" ]; then
                loaded="$loaded, \"$module\""
                entry_points="$entry_points, \"$name\": [\"$module\"]"
            fi
        done < /pretix/stand-in-site-packages
    fi
    echo "PRETIX-TOOLKIT-PLUGINS {\"pretix\": \"stand-in\", \"loaded\": [$loaded], \"entry_points\": {${entry_points#, }}, \"installed\": {${installed#, }}}"
}

block_until_stopped() {
    trap 'exit 0' TERM INT
    sleep 2147483647 &
    wait $!
}

record "args=$*"

if [ "${1:-}" = "cron" ]; then
    record "runperiodic"
    # A test sets STAND_IN_CRON_EXIT in the container's environment to see a failing run (the real
    # runperiodic fails only when pretix cannot start: no database, a broken pretix.cfg).
    exit "${STAND_IN_CRON_EXIT:-0}"
fi

if [ "$AUTOMIGRATE" != "skip" ]; then
    echo "$(date +%s) migrate" >> /data/stand-in-migrations.log
    record "migrate --noinput"
fi

case "${1:-}" in
    all|web)
        trap 'kill $httpd 2>/dev/null; exit 0' TERM INT
        httpd -f -p 80 -h /pretix/www &
        httpd=$!
        wait $httpd
        ;;
    webworker)
        record "gunicorn --workers $NUM_WORKERS"
        block_until_stopped
        ;;
    taskworker)
        shift
        record "celery worker $*"
        block_until_stopped
        ;;
    upgrade)
        record "updatestyles"
        ;;
    shell)
        record "manage shell"
        if [ "${2:-}" = "-c" ]; then
            plugins_answer
        fi
        ;;
    *)
        record "manage $*"
        ;;
esac
