# Sourced by the client test scripts: starts the real server binary on a free loopback port
# with a fresh SQLite database, and stops it on exit. AK_DATABASE_SERVER=postgres://…/ or
# mysql://…/ gives each start a fresh database ak_test_clients_* on that server instead (and a
# master key); AK_DATABASE_URL names one database outright.
#
#   AK_BIN=target/debug/authn-keys; source tests/clients/lib/server.sh; ak_start
#   → AK_URL (http://127.0.0.1:PORT), AK_ADMIN_KEY (the admin's key file), AK_DIR, AK_PID
#
# Extra server settings go in the environment (AUTHN_KEYS_*) before ak_start.

ak_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# A new, empty database on the server AK_DATABASE_SERVER names; prints its URL.
ak_fresh_database() {
    python3 - "$AK_DATABASE_SERVER" "ak_test_clients_$$_${RANDOM}" <<'PY'
import subprocess, sys, urllib.parse
server, name = sys.argv[1], sys.argv[2]
u = urllib.parse.urlsplit(server)
if u.scheme in ("mysql", "mariadb"):
    cmd = ["mariadb", "--protocol=tcp", "-h", u.hostname, "-P", str(u.port or 3306),
           "-u", u.username or "root", "-e", f"CREATE DATABASE {name}"]
    if u.password:
        cmd.insert(1, f"--password={u.password}")
elif u.scheme in ("postgres", "postgresql"):
    cmd = ["psql", server, "-qc", f"CREATE DATABASE {name}"]
else:
    sys.exit(f"AK_DATABASE_SERVER must be postgres://… or mysql://…, not {server}")
subprocess.run(cmd, check=True)
print(urllib.parse.urlunsplit((u.scheme, u.netloc, "/" + name, "", "")))
PY
}

ak_start() {
    : "${AK_BIN:?AK_BIN must name the authn-keys binary}"
    AK_DIR=$(mktemp -d)
    local port db_url="${AK_DATABASE_URL:-sqlite://$AK_DIR/authn-keys.db?mode=rwc}"
    if [[ -n "${AK_DATABASE_SERVER:-}" && -z "${AK_DATABASE_URL:-}" ]]; then
        db_url=$(ak_fresh_database) || return 1
        # Server databases take the master key from the configuration.
        export AUTHN_KEYS_MASTER_KEY="${AUTHN_KEYS_MASTER_KEY:-client-tests-master-key-01234567}"
    fi
    port=$(ak_free_port)
    AK_URL="http://127.0.0.1:${port}"
    AK_ADMIN_KEY="$AK_DIR/admin-key.json"
    AUTHN_KEYS_LISTEN="127.0.0.1:${port}" \
        AUTHN_KEYS_DATABASE_URL="$db_url" \
        AUTHN_KEYS_ADMIN_KEY_FILE="$AK_ADMIN_KEY" \
        AUTHN_KEYS_KEY_POOL_SIZE="${AUTHN_KEYS_KEY_POOL_SIZE:-4}" \
        "$AK_BIN" serve >"$AK_DIR/server.log" 2>&1 &
    AK_PID=$!
    trap ak_stop EXIT
    for _ in $(seq 1 100); do
        if curl -fsS "$AK_URL/healthz" >/dev/null 2>&1 && [[ -s "$AK_ADMIN_KEY" ]]; then
            export AK_URL AK_ADMIN_KEY AK_DIR AK_PID
            return 0
        fi
        if ! kill -0 "$AK_PID" 2>/dev/null; then
            echo "authn-keys exited at start:" >&2
            cat "$AK_DIR/server.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "authn-keys did not answer on $AK_URL within 10 s" >&2
    cat "$AK_DIR/server.log" >&2
    return 1
}

ak_stop() {
    local status=$?
    if [[ -n "${AK_PID:-}" ]] && kill -0 "$AK_PID" 2>/dev/null; then
        kill -TERM "$AK_PID" 2>/dev/null
        wait "$AK_PID" 2>/dev/null
    fi
    if [[ $status -ne 0 && -f "${AK_DIR:-}/server.log" ]]; then
        echo "--- server log (last 40 lines) ---" >&2
        tail -n 40 "$AK_DIR/server.log" >&2
    fi
    [[ -n "${AK_DIR:-}" ]] && rm -rf "$AK_DIR"
    return $status
}
