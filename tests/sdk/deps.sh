# Shared by the suites' run.sh scripts (sourced): install a suite's dependencies once, again only
# when what they were installed from changes.

# ensure_venv VENV REQUIREMENTS: a virtualenv at VENV with REQUIREMENTS installed; rebuilt when
# the requirements file or the Python version ($PYTHON, default python3) changes.
ensure_venv() {
    local venv=$1 req=$2 python=${PYTHON:-python3}
    local stamp="$venv/.requirements.sha256" want have
    want="$( { sha256sum "$req" | cut -d' ' -f1; "$python" -c 'import sys; print(sys.version)'; } | sha256sum | cut -d' ' -f1)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [[ ! -x "$venv/bin/python" || "$want" != "$have" ]]; then
        echo "$(basename "$venv"): installing $(basename "$req") into $venv" >&2
        rm -rf "$venv"
        mkdir -p "$(dirname "$venv")"
        "$python" -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2 || true
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
        echo "$want" > "$stamp"
    fi
}

# ensure_node_modules LABEL: `npm ci` in the current directory when node_modules is missing or
# package-lock.json changed since the last install.
ensure_node_modules() {
    local stamp="node_modules/.lockfile.sha256" want have
    want="$(sha256sum package-lock.json | cut -d' ' -f1)"
    have="$(cat "$stamp" 2>/dev/null || true)"
    if [[ ! -d node_modules || "$want" != "$have" ]]; then
        echo "$1: npm ci" >&2
        npm ci --no-audit --no-fund --loglevel=error >&2
        echo "$want" > "$stamp"
    fi
}
