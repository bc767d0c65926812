# Sourced by scripts/run, scripts/test and scripts/bench: install what is missing, and only that.
# Safe to run again and again; needs root only when a Debian package is missing.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv="$repo/.venv"

say() { printf '%s\n' "$*" >&2; }

ensure_debs() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        say "Error: Debian packages missing: ${missing[*]}: run as root, or: sudo apt-get install ${missing[*]}"
        exit 2
    fi
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# The Chinese locale (zh_CN.UTF-8), as a Chinese office's machine has it: the tests run the interface under
# it. The program itself needs no system locale for its messages (it ships its own catalogs).
ensure_zh_locale() {
    locale -a 2>/dev/null | grep -qix 'zh_CN.utf8' && return 0
    ensure_debs locales
    if [ "$(id -u)" -ne 0 ]; then
        say "note: the zh_CN.UTF-8 locale is not generated (needs root: locale-gen); the tests run without it"
        return 0
    fi
    grep -q '^zh_CN.UTF-8 UTF-8' /etc/locale.gen 2>/dev/null || echo 'zh_CN.UTF-8 UTF-8' >>/etc/locale.gen
    say "generating the zh_CN.UTF-8 locale"
    locale-gen >/dev/null
}

ensure_venv() {
    local extras=${1:-}
    # Debian's python, not one under /root (pyenv's), and files everyone may read, whatever the caller's
    # umask: the service user and the test suite's throwaway users run this virtualenv too.
    local base=/usr/bin/python3 mask
    mask=$(umask)
    umask 022
    if ! "$base" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || ! "$base" -m venv --help >/dev/null 2>&1 || ! "$base" -c 'import ensurepip' 2>/dev/null; then
        ensure_debs python3 python3-venv python3-pip
    fi
    if [ -e "$venv/bin/python" ] && [ "$(readlink -f "$venv/bin/python")" != "$(readlink -f "$base")" ]; then
        say "re-creating the virtualenv in $venv with $base"
        rm -rf "$venv"
    fi
    if [ ! -x "$venv/bin/python" ]; then
        say "creating the virtualenv in $venv"
        "$base" -m venv "$venv"
    fi
    # Reinstall only when the project's dependencies change.
    local hash stamp
    # and again when a translation changes: installing compiles the catalogs
    hash=$(cat "$repo/pyproject.toml" "$repo/setup.py" "$repo"/archiver/i18n/locale/*/LC_MESSAGES/*.po 2>/dev/null \
        | sha256sum | cut -c1-16)
    stamp="$venv/.installed-$hash${extras:+-$extras}"
    # An install with extras (the tests') holds everything a plain one does.
    if [ ! -e "$stamp" ] && { [ -n "$extras" ] || ! compgen -G "$venv/.installed-$hash-*" >/dev/null; }; then
        say "installing the project into $venv (log: $venv/install.log)"
        if ! "$venv/bin/python" -m pip install -e "$repo${extras:+[$extras]}" >"$venv/install.log" 2>&1 \
            || ! "$venv/bin/python" -c 'import archiver.cli'; then
            tail -n 20 "$venv/install.log" >&2
            say "Error: installing the project into $venv failed (full log: $venv/install.log)"
            exit 2
        fi
        find "$venv" -maxdepth 1 -name '.installed-*' ! -name ".installed-$hash*" -delete
        touch "$stamp"
    fi
    # An install made under a tighter umask (a test that ran scripts/run) left files only root can read.
    find "$venv" \( -name '__editable__*' -o -name '*.pth' \) ! -perm -004 -exec chmod a+r {} + 2>/dev/null || true
    # The project's own bytecode, made now (quietly, only what changed): where PYTHONDONTWRITEBYTECODE is set, or
    # the checkout is not writable by whoever runs it, every command would compile its modules again.
    "$venv/bin/python" -m compileall -q "$repo/archiver" >/dev/null || true
    umask "$mask"
}

# The community age test vectors (C2SP CCTV), from the npm registry's cctv-age package, written out
# one file per vector into $age_vectors. Bump the version here to take newer vectors.
AGE_VECTORS_VERSION=0.2.0
age_vectors="$venv/age-vectors-$AGE_VECTORS_VERSION"

ensure_age_vectors() {
    [ -e "$age_vectors/.complete" ] && return 0
    command -v npm >/dev/null 2>&1 || ensure_debs nodejs npm
    local tmp
    tmp=$(mktemp -d)
    say "fetching the age test vectors (npm package cctv-age@$AGE_VECTORS_VERSION)"
    if ! (cd "$tmp" && npm pack --silent "cctv-age@$AGE_VECTORS_VERSION" >/dev/null && tar xzf ./*.tgz); then
        rm -rf "$tmp"
        say "Error: could not fetch cctv-age@$AGE_VECTORS_VERSION from the npm registry"
        exit 2
    fi
    rm -rf "$age_vectors" && mkdir -p "$age_vectors"
    node -e 'const fs = require("fs"); const v = require(process.argv[1]);
             for (const name of Object.keys(v)) fs.writeFileSync(process.argv[2] + "/" + name, Buffer.from(v[name]));' \
        "$tmp/package/index.js" "$age_vectors"
    rm -rf "$tmp"
    touch "$age_vectors/.complete"
}
