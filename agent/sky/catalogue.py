"""A small built-in catalogue of bright deep-sky objects, so target names resolve offline.

The agent at the mount has no internet: `SkyCoord.from_name` (Sesame) is never used. A target
is either given with coordinates in the sequence file or named after an object listed here
(all 110 Messier objects and a selection of bright NGC/IC objects). Coordinates are J2000 (ICRS),
good to about an arcminute, which is plenty for planning; the mount's plate solve does the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CatalogueObject:
    designation: str
    ra_deg: float
    dec_deg: float
    aliases: tuple[str, ...] = ()


# designation, RA (hours), Dec (degrees), other names
_MESSIER: tuple[tuple[str, float, float, tuple[str, ...]], ...] = (
    ("M1", 5.5756, 22.0167, ("NGC 1952", "Crab Nebula")),
    ("M2", 21.5578, -0.8233, ("NGC 7089",)),
    ("M3", 13.7033, 28.3833, ("NGC 5272",)),
    ("M4", 16.3931, -26.5256, ("NGC 6121",)),
    ("M5", 15.3092, 2.0808, ("NGC 5904",)),
    ("M6", 17.6722, -32.2533, ("NGC 6405", "Butterfly Cluster")),
    ("M7", 17.8975, -34.7833, ("NGC 6475", "Ptolemy Cluster")),
    ("M8", 18.0603, -24.3869, ("NGC 6523", "Lagoon Nebula")),
    ("M9", 17.3197, -18.5161, ("NGC 6333",)),
    ("M10", 16.9525, -4.0994, ("NGC 6254",)),
    ("M11", 18.8514, -6.2700, ("NGC 6705", "Wild Duck Cluster")),
    ("M12", 16.7872, -1.9486, ("NGC 6218",)),
    ("M13", 16.6947, 36.4600, ("NGC 6205", "Hercules Cluster")),
    ("M14", 17.6267, -3.2458, ("NGC 6402",)),
    ("M15", 21.4994, 12.1669, ("NGC 7078",)),
    ("M16", 18.3133, -13.8167, ("NGC 6611", "Eagle Nebula")),
    ("M17", 18.3406, -16.1767, ("NGC 6618", "Omega Nebula", "Swan Nebula")),
    ("M18", 18.3328, -17.1017, ("NGC 6613",)),
    ("M19", 17.0439, -26.2678, ("NGC 6273",)),
    ("M20", 18.0397, -23.0300, ("NGC 6514", "Trifid Nebula")),
    ("M21", 18.0703, -22.4900, ("NGC 6531",)),
    ("M22", 18.6067, -23.9033, ("NGC 6656",)),
    ("M23", 17.9483, -19.0300, ("NGC 6494",)),
    ("M24", 18.2833, -18.4833, ("Sagittarius Star Cloud",)),
    ("M25", 18.5297, -19.1150, ("IC 4725",)),
    ("M26", 18.7550, -9.3833, ("NGC 6694",)),
    ("M27", 19.9933, 22.7211, ("NGC 6853", "Dumbbell Nebula")),
    ("M28", 18.4092, -24.8697, ("NGC 6626",)),
    ("M29", 20.3992, 38.5083, ("NGC 6913",)),
    ("M30", 21.6728, -23.1789, ("NGC 7099",)),
    ("M31", 0.7122, 41.2692, ("NGC 224", "Andromeda Galaxy", "Andromeda")),
    ("M32", 0.7117, 40.8653, ("NGC 221",)),
    ("M33", 1.5642, 30.6603, ("NGC 598", "Triangulum Galaxy")),
    ("M34", 2.7017, 42.7617, ("NGC 1039",)),
    ("M35", 6.1483, 24.3333, ("NGC 2168",)),
    ("M36", 5.6050, 34.1400, ("NGC 1960",)),
    ("M37", 5.8717, 32.5533, ("NGC 2099",)),
    ("M38", 5.4783, 35.8483, ("NGC 1912",)),
    ("M39", 21.5300, 48.4333, ("NGC 7092",)),
    ("M40", 12.3700, 58.0833, ("Winnecke 4",)),
    ("M41", 6.7667, -20.7500, ("NGC 2287",)),
    ("M42", 5.5881, -5.3911, ("NGC 1976", "Orion Nebula")),
    ("M43", 5.5919, -5.2672, ("NGC 1982",)),
    ("M44", 8.6733, 19.6667, ("NGC 2632", "Beehive Cluster", "Praesepe")),
    ("M45", 3.7900, 24.1167, ("Pleiades",)),
    ("M46", 7.6961, -14.8100, ("NGC 2437",)),
    ("M47", 7.6100, -14.4833, ("NGC 2422",)),
    ("M48", 8.2300, -5.7500, ("NGC 2548",)),
    ("M49", 12.4964, 8.0006, ("NGC 4472",)),
    ("M50", 7.0450, -8.3833, ("NGC 2323",)),
    ("M51", 13.4978, 47.1953, ("NGC 5194", "Whirlpool Galaxy")),
    ("M52", 23.4133, 61.5933, ("NGC 7654",)),
    ("M53", 13.2153, 18.1692, ("NGC 5024",)),
    ("M54", 18.9175, -30.4783, ("NGC 6715",)),
    ("M55", 19.6664, -30.9622, ("NGC 6809",)),
    ("M56", 19.2764, 30.1836, ("NGC 6779",)),
    ("M57", 18.8931, 33.0292, ("NGC 6720", "Ring Nebula")),
    ("M58", 12.6286, 11.8181, ("NGC 4579",)),
    ("M59", 12.7006, 11.6469, ("NGC 4621",)),
    ("M60", 12.7278, 11.5528, ("NGC 4649",)),
    ("M61", 12.3653, 4.4736, ("NGC 4303",)),
    ("M62", 17.0203, -30.1122, ("NGC 6266",)),
    ("M63", 13.2636, 42.0292, ("NGC 5055", "Sunflower Galaxy")),
    ("M64", 12.9456, 21.6828, ("NGC 4826", "Black Eye Galaxy")),
    ("M65", 11.3156, 13.0922, ("NGC 3623",)),
    ("M66", 11.3375, 12.9917, ("NGC 3627",)),
    ("M67", 8.8550, 11.8167, ("NGC 2682",)),
    ("M68", 12.6578, -26.7433, ("NGC 4590",)),
    ("M69", 18.5231, -32.3492, ("NGC 6637",)),
    ("M70", 18.7203, -32.2919, ("NGC 6681",)),
    ("M71", 19.8964, 18.7792, ("NGC 6838",)),
    ("M72", 20.8911, -12.5411, ("NGC 6981",)),
    ("M73", 20.9833, -12.6333, ("NGC 6994",)),
    ("M74", 1.6117, 15.7833, ("NGC 628", "Phantom Galaxy")),
    ("M75", 20.1014, -21.9214, ("NGC 6864",)),
    ("M76", 1.7053, 51.5753, ("NGC 650", "Little Dumbbell Nebula")),
    ("M77", 2.7111, -0.0133, ("NGC 1068", "Cetus A")),
    ("M78", 5.7794, 0.0500, ("NGC 2068",)),
    ("M79", 5.4031, -24.5242, ("NGC 1904",)),
    ("M80", 16.2839, -22.9750, ("NGC 6093",)),
    ("M81", 9.9258, 69.0653, ("NGC 3031", "Bode's Galaxy")),
    ("M82", 9.9311, 69.6797, ("NGC 3034", "Cigar Galaxy")),
    ("M83", 13.6167, -29.8656, ("NGC 5236", "Southern Pinwheel Galaxy")),
    ("M84", 12.4175, 12.8869, ("NGC 4374",)),
    ("M85", 12.4233, 18.1875, ("NGC 4382",)),
    ("M86", 12.4367, 12.9458, ("NGC 4406",)),
    ("M87", 12.5136, 12.3911, ("NGC 4486", "Virgo A")),
    ("M88", 12.5331, 14.4203, ("NGC 4501",)),
    ("M89", 12.5942, 12.5564, ("NGC 4552",)),
    ("M90", 12.6139, 13.1628, ("NGC 4569",)),
    ("M91", 12.5908, 14.4961, ("NGC 4548",)),
    ("M92", 17.2853, 43.1367, ("NGC 6341",)),
    ("M93", 7.7417, -23.8667, ("NGC 2447",)),
    ("M94", 12.8481, 41.1200, ("NGC 4736",)),
    ("M95", 10.7325, 11.7036, ("NGC 3351",)),
    ("M96", 10.7794, 11.8200, ("NGC 3368",)),
    ("M97", 11.2467, 55.0189, ("NGC 3587", "Owl Nebula")),
    ("M98", 12.2300, 14.9003, ("NGC 4192",)),
    ("M99", 12.3139, 14.4164, ("NGC 4254",)),
    ("M100", 12.3819, 15.8225, ("NGC 4321",)),
    ("M101", 14.0536, 54.3492, ("NGC 5457", "Pinwheel Galaxy")),
    ("M102", 15.1086, 55.7631, ("NGC 5866", "Spindle Galaxy")),
    ("M103", 1.5564, 60.6500, ("NGC 581",)),
    ("M104", 12.6664, -11.6231, ("NGC 4594", "Sombrero Galaxy")),
    ("M105", 10.7969, 12.5817, ("NGC 3379",)),
    ("M106", 12.3158, 47.3039, ("NGC 4258",)),
    ("M107", 16.5422, -13.0536, ("NGC 6171",)),
    ("M108", 11.1919, 55.6739, ("NGC 3556",)),
    ("M109", 11.9600, 53.3744, ("NGC 3992",)),
    ("M110", 0.6728, 41.6853, ("NGC 205",)),
)

# Bright non-Messier objects popular with imagers: designation, RA (h, m, s), Dec (sign, d, m), names
_NGC_IC: tuple[tuple[str, tuple[float, float, float], tuple[int, int, float], tuple[str, ...]], ...] = (
    ("NGC 104", (0, 24, 5), (-1, 72, 4.9), ("47 Tucanae", "47 Tuc")),
    ("NGC 253", (0, 47, 33), (-1, 25, 17.3), ("Sculptor Galaxy",)),
    ("NGC 281", (0, 52, 59), (1, 56, 37.3), ("Pacman Nebula",)),
    ("NGC 869", (2, 19, 0), (1, 57, 8.0), ("h Persei",)),
    ("NGC 884", (2, 22, 18), (1, 57, 8.0), ("chi Persei",)),
    ("NGC 891", (2, 22, 33), (1, 42, 21.0), ()),
    ("IC 1805", (2, 32, 42), (1, 61, 27.0), ("Heart Nebula",)),
    ("IC 1848", (2, 51, 0), (1, 60, 26.0), ("Soul Nebula",)),
    ("NGC 1499", (4, 3, 18), (1, 36, 25.3), ("California Nebula",)),
    ("IC 405", (5, 16, 5), (1, 34, 27.8), ("Flaming Star Nebula",)),
    ("IC 410", (5, 22, 36), (1, 33, 31.0), ()),
    ("NGC 2070", (5, 38, 38), (-1, 69, 5.7), ("Tarantula Nebula",)),
    ("IC 434", (5, 40, 59), (-1, 2, 27.5), ("Horsehead Nebula",)),
    ("NGC 2024", (5, 41, 54), (-1, 1, 51.0), ("Flame Nebula",)),
    ("IC 443", (6, 17, 13), (1, 22, 31.1), ("Jellyfish Nebula",)),
    ("NGC 2237", (6, 33, 45), (1, 4, 59.9), ("Rosette Nebula",)),
    ("NGC 2244", (6, 31, 55), (1, 4, 56.0), ()),
    ("NGC 2264", (6, 41, 6), (1, 9, 53.0), ("Cone Nebula", "Christmas Tree Cluster")),
    ("NGC 2392", (7, 29, 11), (1, 20, 54.7), ("Eskimo Nebula",)),
    ("NGC 2403", (7, 36, 51), (1, 65, 36.2), ()),
    ("NGC 3372", (10, 45, 8), (-1, 59, 52.1), ("Carina Nebula", "Eta Carinae Nebula")),
    ("NGC 3628", (11, 20, 17), (1, 13, 35.4), ("Hamburger Galaxy",)),
    ("NGC 4565", (12, 36, 21), (1, 25, 59.3), ("Needle Galaxy",)),
    ("NGC 4631", (12, 42, 8), (1, 32, 32.5), ("Whale Galaxy",)),
    ("NGC 5128", (13, 25, 28), (-1, 43, 1.2), ("Centaurus A",)),
    ("NGC 5139", (13, 26, 47), (-1, 47, 28.8), ("Omega Centauri",)),
    ("NGC 6543", (17, 58, 33), (1, 66, 38.0), ("Cat's Eye Nebula",)),
    ("NGC 6826", (19, 44, 48), (1, 50, 31.5), ("Blinking Planetary",)),
    ("NGC 6888", (20, 12, 7), (1, 38, 21.3), ("Crescent Nebula",)),
    ("NGC 6946", (20, 34, 52), (1, 60, 9.2), ("Fireworks Galaxy",)),
    ("NGC 6960", (20, 45, 38), (1, 30, 42.5), ("Western Veil Nebula", "Witch's Broom")),
    ("IC 5070", (20, 50, 48), (1, 44, 20.0), ("Pelican Nebula",)),
    ("NGC 6992", (20, 56, 24), (1, 31, 43.0), ("Eastern Veil Nebula",)),
    ("NGC 7000", (20, 59, 17), (1, 44, 31.7), ("North America Nebula",)),
    ("NGC 7023", (21, 1, 36), (1, 68, 9.8), ("Iris Nebula",)),
    ("IC 1396", (21, 39, 6), (1, 57, 30.0), ("Elephant's Trunk Nebula",)),
    ("NGC 7293", (22, 29, 39), (-1, 20, 50.2), ("Helix Nebula",)),
    ("NGC 7331", (22, 37, 4), (1, 34, 24.9), ()),
    ("NGC 7635", (23, 20, 48), (1, 61, 12.1), ("Bubble Nebula",)),
    ("NGC 7662", (23, 25, 54), (1, 42, 32.1), ("Blue Snowball Nebula",)),
)


def normalise(name: str) -> str:
    """Key under which a name is looked up: case, spaces, dashes and apostrophes do not matter."""
    key = re.sub(r"[\s\-_'’.]", "", name).upper()
    return re.sub(r"^MESSIER(?=\d)", "M", key)


def _build() -> dict[str, CatalogueObject]:
    index: dict[str, CatalogueObject] = {}
    for designation, ra_h, dec, aliases in _MESSIER:
        obj = CatalogueObject(designation, ra_h * 15.0, dec, aliases)
        for name in (designation, *aliases):
            index.setdefault(normalise(name), obj)
    for designation, (h, m, s), (sign, d, dm), aliases in _NGC_IC:
        obj = CatalogueObject(designation, (h + m / 60 + s / 3600) * 15.0, sign * (d + dm / 60), aliases)
        for name in (designation, *aliases):
            index.setdefault(normalise(name), obj)
    return index


_INDEX = _build()


def lookup(name: str) -> CatalogueObject | None:
    """The catalogue object called `name` (e.g. "M 31", "NGC 7000", "Orion Nebula"), or None."""
    return _INDEX.get(normalise(name))


def designations() -> list[str]:
    """Every designation in the catalogue, Messier first."""
    return [row[0] for row in _MESSIER] + [row[0] for row in _NGC_IC]
