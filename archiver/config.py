"""Configuration: built-in defaults < /etc/archiver/archiver.toml < --config / ARCHIVER_CONFIG.

`--data-dir` / ARCHIVER_DATA_DIR override `data_dir`. Every key is validated once here into a
frozen Config that is passed explicitly; nothing reads the configuration anywhere else.
Relative paths in a config file are read relative to the folder holding that file.
"""

from __future__ import annotations

import copy
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from archiver.defaults import DEFAULTS
from archiver.errors import ConfigError
from archiver.fs.owners import check_private
from archiver.i18n import SETTINGS as LANGUAGE_SETTINGS
from archiver.i18n import _
from archiver.periods import Period, keeping_classes

SYSTEM_CONFIG = Path("/etc/archiver/archiver.toml")
SUPPORTED_HASHES = ("sha256", "sm3")
CLEAR_AFTER = ("never", "verified", "backed_up")

# Tables whose keys are the user's own (names of people), each value a string.
_FREE_TABLES = {"access.officers", "retention.classes"}

# Keys holding paths (resolved relative to the file that sets them).
_PATH_KEYS = {"data_dir", "dock.mount_roots", "dock.inboxes", "backup.targets", "backup.recipients_file",
              "web.tls_cert", "web.tls_key",
              "service.socket", "backup.keep_purged"}


@dataclass(frozen=True)
class NamingConfig:
    patterns: tuple[re.Pattern[str], ...]
    time_format: str


@dataclass(frozen=True)
class DockConfig:
    mount_roots: tuple[Path, ...]
    inboxes: tuple[Path, ...]
    settle_seconds: float
    max_parallel: int
    clear_after: str


@dataclass(frozen=True)
class LinkingConfig:
    clock_tolerance_s: float
    max_gap_s: float
    # A case file without a "recording required" column: steps of these names are not to be recorded.
    not_required_stages: tuple[str, ...] = ()


@dataclass(frozen=True)
class BackupConfig:
    targets: tuple[Path, ...]
    recipients: tuple[str, ...]
    recipients_file: Path | None
    after_ingest: bool
    keep_snapshots: int
    keep_purged: tuple[Path, ...]  # targets that keep the objects of purged recordings
    s3_targets: tuple[str, ...] = ()  # s3://bucket/prefix entries of backup.targets

    @property
    def names(self) -> tuple[str, ...]:
        """Every target as the catalog names it: folders and s3:// URLs."""
        return (*(str(t) for t in self.targets), *self.s3_targets)


@dataclass(frozen=True)
class RetentionConfig:
    classes: dict[str, Period]  # class name -> minimum keeping period
    verified_within_days: int
    request_days: int = 7  # a purge request not carried out within this many days expires


@dataclass(frozen=True)
class ReportConfig:
    late_dock_hours: float
    unit: str = ""  # the unit's name as the report heads it (后叶镇综合行政执法大队)


@dataclass(frozen=True)
class CapacityConfig:
    warn_days: int
    min_free: int  # bytes


@dataclass(frozen=True)
class ServiceConfig:
    socket: Path
    refusals_every_s: float = 60.0  # a person's refusals within this are one custody event with a count


@dataclass(frozen=True)
class AccessConfig:
    service_user: str
    reader_group: str
    groups: dict[str, str]  # role -> Unix group
    officers: dict[str, str]  # OS user -> officer number


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str
    region: str
    access_key_id: str
    secret_access_key: str
    rolling_lock_days: int


@dataclass(frozen=True)
class WebConfig:
    listen: str
    tls_cert: Path | None
    tls_key: Path | None
    idle_minutes: float
    with_daemon: bool = False


@dataclass(frozen=True)
class CentralConfig:
    url: str  # empty: this station does not sync
    interval_s: float
    max_backoff_s: float
    key: str = ""  # the centre's public key: the receipts a station keeps must verify with it
    wait_s: float = 10.0  # how long a sync waits for the centre to apply what it handed in
    poll_s: float = 0.5  # at the centre: how often `archiver central` looks into an empty inbox


@dataclass(frozen=True)
class Config:
    data_dir: Path
    timezone: ZoneInfo
    hashes: tuple[str, ...]
    naming: NamingConfig
    system_files: tuple[str, ...]
    dock: DockConfig
    linking: LinkingConfig
    backup: BackupConfig
    service: ServiceConfig
    access: AccessConfig
    retention: RetentionConfig
    capacity: CapacityConfig
    report: ReportConfig
    language: str  # "auto" (from the locale), "en" or "zh_CN"
    station_id: str  # empty: a station of its own, in no county
    central: CentralConfig
    web: WebConfig
    catalog_url: str  # empty: SQLite in the data dir
    s3: S3Config
    files: tuple[Path, ...]  # the config files that were read, lowest precedence first


def auto_parallel(cores: int) -> int:
    """Recorders ingested at once when `dock.max_parallel` is 0: four per core, at most 16. A card is read at
    USB speed (40-200 MiB/s) and its hashing takes a fraction of a core, so a core keeps several cards
    busy (`scripts/bench cards`, six USB 2 cards docked at once)."""
    return max(1, min(16, 4 * cores))


def load_config(
    config_file: Path | None = None,
    data_dir: Path | None = None,
    system_file: Path = SYSTEM_CONFIG,
) -> Config:
    """Read the layered configuration and validate every key."""
    merged = copy.deepcopy(DEFAULTS)
    files: list[Path] = []
    if system_file.is_file():
        _overlay(merged, _read_toml(system_file), system_file, "")
        files.append(system_file)
    if config_file is not None:
        if not config_file.is_file():
            raise ConfigError(_("config file {config_file} not found: check --config / ARCHIVER_CONFIG").format(
                                config_file=config_file))
        _overlay(merged, _read_toml(config_file), config_file, "")
        files.append(config_file)
    if data_dir is not None:
        merged["data_dir"] = os.path.abspath(data_dir)
    return _build(merged, tuple(files))


def _read_toml(path: Path) -> dict[str, Any]:
    # A config names the data dir, the backup targets and recipients: one that someone else could
    # have written is not obeyed.
    check_private(path, _("config file"), {0, os.geteuid()})
    try:
        with path.open("rb") as fh:
            layer = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(_("cannot read config file {path}: {strerror}").format(
                            path=path, strerror=exc.strerror)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(_("config file {path} is not valid TOML: {exc}").format(path=path, exc=exc)) from exc
    if _holds_secret(layer) and path.stat().st_mode & 0o004:
        raise ConfigError(_("config file {path} holds a secret (an S3 secret key or a database password) and "
                            "everyone may read it: chmod o-r {path}").format(path=path))
    return layer


def _holds_secret(layer: dict[str, Any]) -> bool:
    def table(name: str) -> dict[str, Any]:
        value = layer.get(name)
        return value if isinstance(value, dict) else {}

    urls = [table("central").get("url"), table("catalog").get("url")]
    return bool(table("s3").get("secret_access_key")) or any(
        isinstance(url, str) and _url_password(url) for url in urls)


def _url_password(url: str) -> bool:
    """Whether a database URL carries a password, in any of its forms: `user:pass@host`, or `password=` among
    its query parameters (as libpq and SQLAlchemy both take it)."""
    from urllib.parse import parse_qsl, urlsplit

    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return True  # a URL that does not parse is not trusted to hold no secret
    query = [key.strip().lower() for key, _value in parse_qsl(parts.query, keep_blank_values=True)]
    return bool(password) or "password" in query


def _overlay(target: dict[str, Any], layer: dict[str, Any], source: Path, prefix: str) -> None:
    for key, value in layer.items():
        name = f"{prefix}{key}"
        if key not in target:
            raise ConfigError(_("unknown key '{name}' in {source}: see config/archiver.toml for the keys").format(
                                name=name, source=source))
        default = target[key]
        if isinstance(default, dict):
            if not isinstance(value, dict):
                raise ConfigError(_("'{name}' in {source} must be a table ([{name}])").format(
                                    name=name, source=source))
            if name in _FREE_TABLES:
                bad = [k for k, v in value.items() if not isinstance(v, str) or not v.strip()]
                if bad:
                    raise ConfigError(_("'{name}.{value}' in {source} must be a non-empty string").format(
                                        name=name, value=bad[0], source=source))
                default.update(value)
                continue
            _overlay(default, value, source, f"{name}.")
            continue
        _check_type(name, default, value, source)
        if name in _PATH_KEYS:
            value = _resolve(value, source.parent)
        target[key] = value


def _check_type(name: str, default: Any, value: Any, source: Path) -> None:
    if isinstance(default, list):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        want = _("a list of strings")
    elif isinstance(default, bool):
        ok, want = isinstance(value, bool), _("true or false")
    elif isinstance(default, (int, float)):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        want = _("a number")
    else:
        ok, want = isinstance(value, str), _("a string")
    if not ok:
        raise ConfigError(_("'{name}' in {source} must be {want}, not {value!r}").format(
                            name=name, source=source, want=want, value=value))


def _resolve(value: str | list[str], base: Path) -> str | list[str]:
    if isinstance(value, list):
        return [_resolve(v, base) for v in value]  # type: ignore[misc]
    return os.path.abspath(base / value) if value and not value.startswith(S3_SCHEME) else value


def _build(raw: dict[str, Any], files: tuple[Path, ...]) -> Config:
    where = files[-1] if files else "the built-in defaults"
    tz, hashes, patterns = _timezone(raw, where), _hashes(raw, where), _patterns(raw["naming"]["patterns"], where)
    _check_local(raw, where)
    _check_county(raw, where)
    naming, dock, station_id, central = raw["naming"], raw["dock"], raw["station"]["id"], raw["central"]
    return Config(
        data_dir=Path(raw["data_dir"]),
        timezone=tz,
        hashes=hashes,
        naming=NamingConfig(tuple(patterns), naming["time_format"]),
        system_files=tuple(raw["scan"]["system_files"]),
        dock=DockConfig(
            mount_roots=tuple(Path(p) for p in dock["mount_roots"]),
            inboxes=tuple(Path(p) for p in dock["inboxes"]),
            settle_seconds=float(dock["settle_seconds"]),
            max_parallel=int(dock["max_parallel"]) or auto_parallel(os.cpu_count() or 1),
            clear_after=dock["clear_after"],
        ),
        linking=LinkingConfig(float(raw["linking"]["clock_tolerance_s"]), float(raw["linking"]["max_gap_s"]),
                              tuple(s.strip() for s in raw["linking"]["not_required_stages"] if s.strip())),
        backup=BackupConfig(
            targets=tuple(Path(p) for p in raw["backup"]["targets"] if not p.startswith(S3_SCHEME)),
            recipients=tuple(raw["backup"]["recipients"]),
            recipients_file=Path(raw["backup"]["recipients_file"]) if raw["backup"]["recipients_file"] else None,
            after_ingest=raw["backup"]["after_ingest"],
            keep_snapshots=int(raw["backup"]["keep_snapshots"]),
            keep_purged=tuple(Path(p) for p in raw["backup"]["keep_purged"]),
            s3_targets=tuple(_s3_url(p, where) for p in raw["backup"]["targets"] if p.startswith(S3_SCHEME)),
        ),
        service=ServiceConfig(Path(raw["service"]["socket"]), float(raw["service"]["refusals_every_s"])),
        access=AccessConfig(raw["access"]["service_user"], raw["access"]["reader_group"],
                            dict(raw["access"]["groups"]), dict(raw["access"]["officers"])),
        retention=RetentionConfig(keeping_classes(raw["retention"]["classes"], where),
                                  int(raw["retention"]["verified_within_days"]), raw["retention"]["request_days"]),
        capacity=CapacityConfig(int(raw["capacity"]["warn_days"]), _bytes(raw["capacity"]["min_free"], where)),
        report=ReportConfig(float(raw["report"]["late_dock_hours"]), str(raw["report"]["unit"]).strip()),
        language=raw["ui"]["language"],
        station_id=station_id,
        central=CentralConfig(_database_url(central["url"]), float(central["interval_s"]),
                              float(central["max_backoff_s"]), _centre_key(central["key"], where),
                              float(central["wait_s"]), float(central["poll_s"])),
        web=WebConfig(str(raw["web"]["listen"]), Path(raw["web"]["tls_cert"]) if raw["web"]["tls_cert"] else None,
                      Path(raw["web"]["tls_key"]) if raw["web"]["tls_key"] else None,
                      float(raw["web"]["idle_minutes"]), raw["web"]["with_daemon"]),
        catalog_url=_database_url(raw["catalog"]["url"]),
        s3=S3Config(raw["s3"]["endpoint_url"], raw["s3"]["region"], raw["s3"]["access_key_id"],
                    raw["s3"]["secret_access_key"], int(raw["s3"]["rolling_lock_days"])),
        files=files,
    )


def _timezone(raw: dict[str, Any], where: object) -> ZoneInfo:
    try:
        tz = ZoneInfo(raw["timezone"])
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(_("unknown timezone '{timezone}' in {where}: use an IANA name such as Asia/Shanghai").format(
                            timezone=raw['timezone'], where=where)) from exc
    return tz


def _hashes(raw: dict[str, Any], where: object) -> tuple[str, ...]:
    hashes = tuple(dict.fromkeys(raw["hashes"]))
    bad = [h for h in hashes if h not in SUPPORTED_HASHES]
    if bad or "sha256" not in hashes:
        raise ConfigError(_("'hashes' in {where} must include sha256 and may add sm3, not {list}").format(
                            where=where, list=list(raw['hashes'])))
    return hashes


def _patterns(texts: list[str], where: object) -> list[re.Pattern[str]]:
    patterns = []
    for text in texts:
        try:
            pattern = re.compile(text)
        except re.error as exc:
            raise ConfigError(_("'naming.patterns' entry {text!r} in {where} is not a valid regex: {exc}").format(
                                text=text, where=where, exc=exc)) from exc
        if "start" not in pattern.groupindex and "serial" not in pattern.groupindex:
            raise ConfigError(_("'naming.patterns' entry {text!r} in {where} needs a (?P<serial>...) or "
                                "(?P<start>...) group").format(
                                text=text, where=where))
        patterns.append(pattern)
    return patterns


def _check_local(raw: dict[str, Any], where: object) -> None:
    """The station's own settings: the dock, backups, the service, the language, retention, the data dir."""
    dock = raw["dock"]
    if dock["clear_after"] not in CLEAR_AFTER:
        raise ConfigError(_("'dock.clear_after' in {where} must be one of {items}").format(
                            where=where, items=', '.join(CLEAR_AFTER)))
    if int(dock["max_parallel"]) < 0 or dock["settle_seconds"] < 0:
        raise ConfigError(_("'dock.max_parallel' (0: automatic) and 'dock.settle_seconds' must not be negative in "
                            "{where}").format(where=where))
    if raw["backup"]["keep_snapshots"] != int(raw["backup"]["keep_snapshots"]) or raw["backup"]["keep_snapshots"] < 1:
        raise ConfigError(_("'backup.keep_snapshots' in {where} must be a whole number, at least 1").format(
            where=where))
    if not raw["service"]["socket"] or len(os.fsencode(raw["service"]["socket"])) > 107:
        raise ConfigError(_("'service.socket' in {where} must be a path of at most 107 bytes (a Unix socket's "
                            "limit)").format(where=where))
    if not 0 < raw["service"]["refusals_every_s"] <= 86400:
        raise ConfigError(_("'service.refusals_every_s' in {where} must be above 0 and at most 86400").format(
                            where=where))
    if raw["ui"]["language"] not in LANGUAGE_SETTINGS:
        raise ConfigError(_("'ui.language' in {where} must be one of {items}").format(
                            where=where, items=', '.join(LANGUAGE_SETTINGS)))
    days = raw["retention"]["request_days"]
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= 366:
        raise ConfigError(_("'retention.request_days' in {where} must be a whole number of days, 1 to 366").format(
                            where=where))
    if not raw["data_dir"]:
        raise ConfigError(_("'data_dir' in {where} is empty: give the folder for the archive and catalog").format(
                            where=where))


def _check_county(raw: dict[str, Any], where: object) -> None:
    """What ties the station to the county: its name, the databases, the S3 locks, the sync's timing."""
    station_id, central = raw["station"]["id"], raw["central"]
    if station_id and not STATION_ID.match(station_id):
        raise ConfigError(_("'station.id' in {where} is {value!r}: use 1 to 64 letters, digits, '-' or '_' (such as "
                            "houye)").format(where=where, value=station_id))
    for name, url in (("central.url", central["url"]), ("catalog.url", raw["catalog"]["url"])):
        if url and not url.startswith(("postgresql://", "postgresql+psycopg://", "sqlite:///")):
            raise ConfigError(_("'{name}' in {where} must be a database URL such as postgresql+psycopg://user@host/"
                                "db, not {value!r}").format(name=name, where=where, value=url.split("@")[-1]))
    if central["url"] and not station_id:
        raise ConfigError(_("'central.url' is set in {where} but 'station.id' is not: give this station its name "
                            "in the county ([station] id = \"houye\")").format(where=where))
    if int(raw["s3"]["rolling_lock_days"]) < 1:
        raise ConfigError(_("'s3.rolling_lock_days' in {where} must be at least 1").format(where=where))
    if central["interval_s"] <= 0 or central["max_backoff_s"] < central["interval_s"]:
        raise ConfigError(_("'central.interval_s' must be above 0 and 'central.max_backoff_s' at least as long, "
                            "in {where}").format(where=where))


STATION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
S3_SCHEME = "s3://"


def names_s3_store(target: str) -> bool:
    """Whether a backup target's name (as backup.targets and the custody events give it) is an S3 store's."""
    return target.startswith(S3_SCHEME)
_S3_URL = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[A-Za-z0-9._/-]*)?$")


def _s3_url(url: str, where: object) -> str:
    if not _S3_URL.match(url) or "//" in url[5:] or "/../" in url + "/" or "/./" in url + "/":
        raise ConfigError(_("'backup.targets' entry {url!r} in {where} is not a usable S3 target: write "
                            "s3://bucket or s3://bucket/prefix (lower-case bucket name)").format(url=url, where=where))
    return url.rstrip("/")


def _centre_key(text: str, where: object) -> str:
    """The centre's public key as `archiver stations add` prints it, or empty."""
    if text and not re.fullmatch(r"ed25519:[A-Za-z0-9+/]{43}=", text.strip()):
        raise ConfigError(_("'central.key' in {where} must be the centre's key as 'archiver stations add' prints it "
                            "(ed25519:...), not {value!r}").format(where=where, value=text[:60]))
    return text.strip()


def _database_url(url: str) -> str:
    """SQLAlchemy's name for PostgreSQL through psycopg 3 (plain postgresql:// would ask for psycopg2)."""
    return "postgresql+psycopg://" + url.removeprefix("postgresql://") if url.startswith("postgresql://") else url


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B)?\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
            "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _bytes(text: str, where: object) -> int:
    match = _SIZE.match(str(text))
    if not match or (match.group(2) or "").lower() not in _FACTORS:
        raise ConfigError(_("'capacity.min_free' in {where} is {text!r}: give a size such as \"5 GiB\" or "
                            "\"500 MB\"").format(where=where, text=text))
    return int(float(match.group(1)) * _FACTORS[(match.group(2) or "").lower()])
