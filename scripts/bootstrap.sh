# Sourced by scripts/test and scripts/up: makes .venv and installs the project with the given extras.
# Usage: bootstrap_venv EXTRAS   (e.g. "test" or "" for the plain install)

bootstrap_venv() {
    local extras="$1" spec="."
    [ -n "$extras" ] && spec=".[$extras]"
    if [ ! -x .venv/bin/python ]; then
        echo "==> creating .venv"
        "${PYTHON:-python3}" -m venv .venv
    fi
    echo "==> installing smartlock$([ -n "$extras" ] && echo "[$extras]") into .venv"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
}

# Installs Debian packages whose command is missing: "command:package" pairs.
ensure_debian_packages() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "==> installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
