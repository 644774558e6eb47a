"""Accumulating calibration frames grouped into future masters: one exact key, one temperature band."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from agent.library.database import key_clause
from agent.library.keys import KEY_COLUMNS, ConfigKey, FrameType, LibraryPolicy


@dataclass(frozen=True)
class Group:
    """Accumulating frames of one configuration; `key.temperature` is the group's set-point."""

    key: ConfigKey
    count: int
    temperatures: tuple[float | None, ...]
    first_captured: float
    last_captured: float


def find_groups(
    conn: sqlite3.Connection, policy: LibraryPolicy, frame_type: FrameType | None = None
) -> list[Group]:
    """Accumulating calibration frames grouped by exact key, temperatures clustered within
    the policy's tolerance around the most used set-point."""
    cols = ", ".join(KEY_COLUMNS)
    sql = (
        f"SELECT {cols}, ROUND(temperature, 1) AS t, COUNT(*) AS n, MIN(captured_at) AS first, "
        f"MAX(captured_at) AS last FROM frames WHERE state = 'accumulating'"
    )
    args: list[object] = []
    if frame_type is not None:
        sql += " AND frame_type = ?"
        args.append(frame_type.value)
    sql += f" GROUP BY {cols}, t"
    by_key: dict[tuple[object, ...], list[sqlite3.Row]] = {}
    for row in conn.execute(sql, args):
        by_key.setdefault(tuple(row[c] for c in KEY_COLUMNS), []).append(row)
    out: list[Group] = []
    for rows in by_key.values():
        for cluster in cluster_temperatures(rows, policy.temperature_tolerance):
            anchor = cluster[0]["t"]
            out.append(
                Group(
                    key=ConfigKey.from_row(cluster[0], temperature=anchor),
                    count=sum(int(r["n"]) for r in cluster),
                    temperatures=tuple(r["t"] for r in cluster),
                    first_captured=min(float(r["first"] or 0) for r in cluster),
                    last_captured=max(float(r["last"] or 0) for r in cluster),
                )
            )
    return out


def group_frame_ids(conn: sqlite3.Connection, group: Group) -> list[int]:
    """The group's frames, oldest capture first: the order a build job names them in."""
    temps = [t for t in group.temperatures if t is not None]
    where, args = key_clause(group.key.exact())
    sql = f"SELECT id FROM frames WHERE state = 'accumulating' AND {where}"
    if temps:
        sql += f" AND ROUND(temperature, 1) IN ({', '.join('?' * len(temps))})"
        args += temps
    else:
        sql += " AND temperature IS NULL"
    # Sorted here: an ORDER BY makes SQLite prefer the capture-time index over the key index.
    rows = conn.execute(sql.replace("SELECT id", "SELECT id, captured_at", 1), args).fetchall()
    return [int(r[0]) for r in sorted(rows, key=lambda r: (r[1] or 0.0, r[0]))]


def cluster_temperatures(rows: list[sqlite3.Row], tolerance: float) -> list[list[sqlite3.Row]]:
    """Split rows (one per rounded temperature) into bands of ±tolerance, each anchored on the
    most used remaining temperature; rows without a temperature form their own group."""
    none = [r for r in rows if r["t"] is None]
    rest = sorted((r for r in rows if r["t"] is not None), key=lambda r: (-int(r["n"]), float(r["t"])))
    clusters: list[list[sqlite3.Row]] = []
    taken: set[int] = set()
    for i, anchor in enumerate(rest):
        if i in taken:
            continue
        members = [anchor]
        taken.add(i)
        for j, other in enumerate(rest):
            if j not in taken and abs(float(other["t"]) - float(anchor["t"])) <= tolerance + 1e-9:
                members.append(other)
                taken.add(j)
        clusters.append(members)
    if none:
        clusters.append(none)
    return clusters
