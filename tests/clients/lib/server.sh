# Sourced by the client test scripts: starts the real server binary on a free loopback port
# with a fresh SQLite database (or DATABASE_URL when it names PostgreSQL), and stops it on exit.
#
#   AK_BIN=target/debug/authn-keys; source tests/clients/lib/server.sh; ak_start
#   → AK_URL (http://127.0.0.1:PORT), AK_ADMIN_KEY (the admin's key file), AK_DIR, AK_PID
#
# Extra server settings go in the environment (AUTHN_KEYS_*) before ak_start.

ak_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

ak_start() {
    : "${AK_BIN:?AK_BIN must name the authn-keys binary}"
    AK_DIR=$(mktemp -d)
    local port
    port=$(ak_free_port)
    AK_URL="http://127.0.0.1:${port}"
    AK_ADMIN_KEY="$AK_DIR/admin-key.json"
    AUTHN_KEYS_LISTEN="127.0.0.1:${port}" \
        AUTHN_KEYS_DATABASE_URL="${AK_DATABASE_URL:-sqlite://$AK_DIR/authn-keys.db?mode=rwc}" \
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
