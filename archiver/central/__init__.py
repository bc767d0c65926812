"""Many stations, one county: the central catalog (PostgreSQL) fed by each station's signed custody log.

`receive` is the centre's side: it checks each delivered event against the station's registered key and
chain and applies it, idempotently by (station, seq). `sync` is the station's side: it ships what the
centre does not hold yet. `stations` registers stations and re-checks what the centre holds.
"""
