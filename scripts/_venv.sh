# Sourced by the scripts in this folder: makes .venv on first use and installs the package with
# its dev, benchmark, examples and integrations extras, again whenever pyproject.toml (or the
# pins) change.
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# make_venv DIR PYTHON [CONSTRAINTS [EXTRAS]]: DIR as a virtualenv of PYTHON with
# session-mw[EXTRAS], by default session-mw[dev,bench,examples,integrations].
make_venv() {
    local venv=$1 python=$2 pins=${3:-} extras=${4:-dev,bench,examples,integrations}
    [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
    local stamp="$venv/.session-mw-installed" wanted
    wanted=$( (cat pyproject.toml ${pins:+"$pins"}; echo "$extras") | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
        echo "Installing session-mw and its development tools into $venv ..." >&2
        "$venv/bin/python" -m pip install --quiet --upgrade pip
        "$venv/bin/python" -m pip install --quiet ${pins:+-c "$pins"} -e ".[$extras]"
        echo "$wanted" > "$stamp"
    fi
}

make_venv .venv python3
