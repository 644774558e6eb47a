"""Device profiles copied from real drivers' sources (indilib/indi, indilib/indi-3rdparty).

Each profile lists the properties a device defines before and after CONNECT, with the real
names, element names, labels, permissions and rules, and the quirks the agent must survive.
`left` is what another client left in the driver's config (~/.indi/*_config.xml) on first start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Prop = tuple[Any, ...]  # ("number"|"switch"|"text"|"blob", name, perm, rule_or_None, members)

CCD, WHEEL, DUSTCAP, LIGHTBOX, TELESCOPE, AUX = 1 << 1, 1 << 4, 1 << 9, 1 << 10, 1 << 0, 1 << 15


@dataclass(frozen=True)
class Profile:
    key: str
    device: str
    kind: str  # camera / panel / cap / mount / weather
    source: str  # the driver source this profile follows
    interface: int
    interface_connected: int | None = None  # flip_flat.cpp sets DUSTCAP only after connecting
    props: tuple[Prop, ...] = ()
    quirks: frozenset[str] = frozenset()
    left: dict[str, Any] = field(default_factory=dict)


def sw(name: str, members: list[tuple[str, str, bool]], perm: str = "rw", rule: str = "OneOfMany") -> Prop:
    return ("switch", name, perm, rule, members)


def num(name: str, members: list[tuple[str, str, float, float, float, float]], perm: str = "rw") -> Prop:
    return ("number", name, perm, None, members)


def txt(name: str, members: list[tuple[str, str, str]], perm: str = "rw") -> Prop:
    return ("text", name, perm, None, members)


W, H = 128, 96  # tiny sensors keep the tests fast


def ccd_base(cooled: bool, temp_perm: str = "rw") -> list[Prop]:
    """What libindi's INDI::CCD (libs/indibase/indiccd.cpp) defines after connecting."""
    props: list[Prop] = [
        num("CCD_EXPOSURE", [("CCD_EXPOSURE_VALUE", "Duration (s)", 0.0001, 3600, 1, 1)]),
        sw("CCD_ABORT_EXPOSURE", [("ABORT", "Abort", False)], rule="AtMostOne"),
        num("CCD_FRAME", [("X", "Left ", 0, W - 1, 1, 0), ("Y", "Top", 0, H - 1, 1, 0),
                          ("WIDTH", "Width", 1, W, 1, W), ("HEIGHT", "Height", 1, H, 1, H)]),
        sw("CCD_FRAME_RESET", [("RESET", "Reset", False)], rule="AtMostOne"),
        num("CCD_BINNING", [("HOR_BIN", "X", 1, 4, 1, 1), ("VER_BIN", "Y", 1, 4, 1, 1)]),
        sw("CCD_FRAME_TYPE", [("FRAME_LIGHT", "Light", True), ("FRAME_BIAS", "Bias", False),
                              ("FRAME_DARK", "Dark", False), ("FRAME_FLAT", "Flat", False)]),
        num("CCD_INFO", [("CCD_MAX_X", "Max. Width", 1, 16000, 0, W), ("CCD_MAX_Y", "Max. Height", 1, 16000, 0, H),
                         ("CCD_PIXEL_SIZE", "Pixel size (um)", 1, 40, 0, 3.76),
                         ("CCD_PIXEL_SIZE_X", "Pixel size X", 1, 40, 0, 3.76),
                         ("CCD_PIXEL_SIZE_Y", "Pixel size Y", 1, 40, 0, 3.76),
                         ("CCD_BITSPERPIXEL", "Bits per pixel", 8, 64, 0, 16)], perm="ro"),
        sw("CCD_COMPRESSION", [("INDI_ENABLED", "Enabled", False), ("INDI_DISABLED", "Disabled", True)]),
        sw("CCD_TRANSFER_FORMAT", [("FORMAT_FITS", "FITS", True), ("FORMAT_NATIVE", "Native", False),
                                   ("FORMAT_XISF", "XISF", False)]),
        sw("UPLOAD_MODE", [("UPLOAD_CLIENT", "Client", True), ("UPLOAD_LOCAL", "Local", False),
                           ("UPLOAD_BOTH", "Both", False)]),
        ("blob", "CCD1", "ro", None, [("CCD1", "Image")]),
        num("CCD_TEMPERATURE", [("CCD_TEMPERATURE_VALUE", "Temperature (C)", -50, 50, 0, 20)], perm=temp_perm),
    ]
    if cooled:
        props.append(num("CCD_COOLER_POWER", [("CCD_COOLER_VALUE", "Cooling Power (%)", 0, 100, 1, 0)], perm="ro"))
    return props


def capture_format(members: list[tuple[str, str, bool]]) -> Prop:
    return sw("CCD_CAPTURE_FORMAT", members)


LEFT_BY_EKOS = {  # compression, a sub-frame and 8-bit left in the driver's config
    "CCD_COMPRESSION": "INDI_ENABLED",
    "CCD_FRAME": {"X": 16, "Y": 8, "WIDTH": 64, "HEIGHT": 48},
}

PROFILES: dict[str, Profile] = {}


def _add(p: Profile) -> None:
    PROFILES[p.key] = p


_add(Profile(
    "asi_cooled", "ZWO CCD ASI2600MM Pro", "camera", "indi-3rdparty indi-asi/asi_base.cpp", CCD,
    props=(*ccd_base(True),
           sw("CCD_COOLER", [("COOLER_ON", "ON", False), ("COOLER_OFF", "OFF", True)]),
           num("CCD_CONTROLS", [("Gain", "Gain", 0, 700, 1, 100), ("Offset", "Offset", 0, 240, 1, 50),
                                ("BandWidth", "BandWidth", 40, 100, 1, 50)]),
           sw("CCD_CONTROLS_MODE", [("AUTO_BandWidth", "BandWidth", False)], rule="AnyOfMany"),
           capture_format([("ASI_IMG_RAW8", "Raw 8 bit", True), ("ASI_IMG_RAW16", "Raw 16 bit", False)])),
    left={**LEFT_BY_EKOS, "CCD_CAPTURE_FORMAT": "ASI_IMG_RAW8"},
))
_add(Profile(
    "asi_uncooled", "ZWO CCD ASI120MM Mini", "camera", "indi-3rdparty indi-asi/asi_base.cpp (no cooler: "
    "TemperatureNP IP_RO)", CCD,
    props=(*ccd_base(False, temp_perm="ro"),
           num("CCD_CONTROLS", [("Gain", "Gain", 0, 100, 1, 50), ("Offset", "Offset", 0, 100, 1, 10)]),
           capture_format([("ASI_IMG_RAW8", "Raw 8 bit", True), ("ASI_IMG_RAW16", "Raw 16 bit", False)])),
    left={"CCD_TRANSFER_FORMAT": "FORMAT_NATIVE", "UPLOAD_MODE": "UPLOAD_LOCAL"},
))
_qhy = (*ccd_base(True),
        sw("CCD_COOLER", [("COOLER_ON", "ON", False), ("COOLER_OFF", "OFF", True)]),
        num("CCD_GAIN", [("GAIN", "Gain", 0, 100, 1, 0)]), num("CCD_OFFSET", [("OFFSET", "Offset", 0, 255, 1, 0)]),
        num("READ_MODE", [("MODE", "Mode", 0, 3, 1, 0)]),
        capture_format([("INDI_MONO", "Mono", True)]))
_add(Profile(
    "qhy_wheel", "QHY CCD QHY268M-abc", "camera", "indi-3rdparty indi-qhy/qhy_ccd.cpp (CFW on the camera)",
    CCD | WHEEL,
    props=(*_qhy, num("FILTER_SLOT", [("FILTER_SLOT_VALUE", "Filter", 1, 5, 1, 1)]),
           txt("FILTER_NAME", [(f"FILTER_SLOT_NAME_{i}", f"Filter#{i}", n) for i, n in
                               enumerate(("L", "R", "G", "B", "Ha"), start=1)])),
    left={"CCD_COMPRESSION": "INDI_ENABLED"},
))
_add(Profile(
    "qhy_nowheel", "QHY CCD QHY533M-def", "camera", "indi-3rdparty indi-qhy/qhy_ccd.cpp (filter bit without CFW)",
    CCD | WHEEL, props=_qhy, quirks=frozenset({"wheel_bit_without_wheel"}),
))
_add(Profile(
    "playerone", "PlayerOne CCD Poseidon-M Pro", "camera", "indi-3rdparty indi-playerone/playerone_base.cpp", CCD,
    props=(*ccd_base(True),
           sw("CCD_COOLER", [("COOLER_ON", "ON", False), ("COOLER_OFF", "OFF", True)], perm="wo"),
           num("CCD_CONTROLS", [("Gain", "Gain", 0, 600, 1, 100), ("Offset", "Offset", 0, 255, 1, 12)]),
           sw("SENSOR_MODE", [("MODE_0", "Normal", False), ("MODE_1", "LowNoise", False)]),  # last mode: none on
           capture_format([("POA_RAW8", "Raw 8 bit", False), ("POA_RAW16", "Raw 16 bit", True)])),
    left={"CCD_FRAME": {"X": 0, "Y": 0, "WIDTH": 64, "HEIGHT": 48}},
))
_add(Profile(
    "touptek", "ToupTek ATR585M", "camera", "indi-3rdparty indi-toupbase/indi_toupbase.cpp", CCD,
    props=(*ccd_base(True),
           sw("CCD_COOLER", [("COOLER_ON", "ON", False), ("COOLER_OFF", "OFF", True)]),
           num("CCD_GAIN", [("GAIN", "Gain", 100, 5000, 1, 100)]), num("CCD_OFFSET", [("OFFSET", "Offset", 0, 255, 1, 0)]),
           sw("TC_CONVERSION_GAIN", [("GAIN_LOW", "Low", True), ("GAIN_HIGH", "High", False), ("GAIN_HDR", "HDR", False)]),
           sw("TC_LOW_NOISE", [("INDI_ENABLED", "ON", False), ("INDI_DISABLED", "OFF", True)]),
           sw("TC_HIGHFULLWELL", [("INDI_ENABLED", "ON", False), ("INDI_DISABLED", "OFF", True)]),
           capture_format([("INDI_MONO", "Mono", True)])),
    left={"CCD_TRANSFER_FORMAT": "FORMAT_NATIVE"},
))
_add(Profile(
    "atik_horizon", "Atik Horizon", "camera", "indi-3rdparty indi-atik/atik_ccd.cpp", CCD,
    props=(*ccd_base(True),
           sw("CCD_COOLER", [("COOLER_ON", "ON", False), ("COOLER_OFF", "OFF", True)]),
           sw("CCD_CONTROL_PRESETS", [("PRESET_CUSTOM", "Custom", True), ("PRESET_LOW", "Low", False)]),  # count 2
           num("CCD_CONTROLS", [("CONTROL_GAIN", "Gain", 0, 60, 5, 30), ("CONTROL_OFFSET", "Offset", 0, 511, 10, 0)])),
    left=LEFT_BY_EKOS,
))
_add(Profile(
    "sbig", "SBIG CCD", "camera", "indi-3rdparty indi-sbig/sbig_ccd.cpp (filter bit, no CFW, fixed gain)",
    CCD | WHEEL,
    props=(*ccd_base(True), sw("CCD_COOLER", [("COOLER_ON", "ON", False), ("COOLER_OFF", "OFF", True)])),
    quirks=frozenset({"wheel_bit_without_wheel"}),
))
_light = (sw("FLAT_LIGHT_CONTROL", [("FLAT_LIGHT_ON", "On", False), ("FLAT_LIGHT_OFF", "Off", True)]),
          num("FLAT_LIGHT_INTENSITY", [("FLAT_LIGHT_INTENSITY_VALUE", "Value", 0, 255, 10, 0)]))
_cap = (sw("CAP_PARK", [("PARK", "Park", False), ("UNPARK", "Unpark", False)]),  # indidustcapinterface.cpp
        sw("CAP_ABORT", [("ABORT", "Abort", False)], rule="AtMostOne"))
_add(Profile(
    "flipflat", "Flip Flat", "panel", "indi drivers/auxiliary/flip_flat.cpp + indidustcapinterface/"
    "indilightboxinterface", AUX | LIGHTBOX, interface_connected=AUX | LIGHTBOX | DUSTCAP,
    props=(*_cap, *_light, txt("Status", [("Cover", "Cover", ""), ("Light", "Light", ""), ("Motor", "Motor", "")], "ro")),
    quirks=frozenset({"refuse_light_while_open"}),
))
_add(Profile(
    "dsd_fp", "Deep Sky Dad FP", "panel", "indi drivers/auxiliary/deepskydad_fp.cpp", AUX | LIGHTBOX | DUSTCAP,
    props=(*_cap, *_light),
))
_add(Profile(
    "pegasus_light", "Pegasus FlatMaster", "panel", "indi drivers/auxiliary/pegasus_flatmaster.cpp (light only; "
    "LightBox per-filter presets)", AUX | LIGHTBOX,
    props=(*_light, num("FLAT_LIGHT_FILTER_INTENSITY", [("L", "L", 0, 255, 10, 40)])),
    quirks=frozenset({"filter_presets"}),
))
_add(Profile(
    "alnitak_cover", "Alnitak Dust Cover", "cap", "indi drivers/auxiliary/flip_flat.cpp (ALNITAK_DUST_COVER: "
    "cover only)", AUX | DUSTCAP, props=_cap,
))
_add(Profile(
    "eqmod", "EQMod Mount", "mount", "indi-3rdparty indi-eqmod/eqmodbase.cpp + inditelescope.cpp", TELESCOPE,
    props=(num("EQUATORIAL_EOD_COORD", [("RA", "RA (hh:mm:ss)", 0, 24, 0, 0), ("DEC", "DEC (dd:mm:ss)", -90, 90, 0, 90)]),
           sw("ON_COORD_SET", [("TRACK", "Track", True), ("SLEW", "Slew", False), ("SYNC", "Sync", False)]),
           sw("TELESCOPE_PARK", [("PARK", "Park(ed)", True), ("UNPARK", "UnPark(ed)", False)]),
           sw("TELESCOPE_TRACK_STATE", [("TRACK_ON", "On", False), ("TRACK_OFF", "Off", True)]),
           sw("TELESCOPE_PIER_SIDE", [("PIER_WEST", "West (pointing east)", True),
                                      ("PIER_EAST", "East (pointing west)", False)], perm="ro"),
           num("GEOGRAPHIC_COORD", [("LAT", "Lat (dd:mm:ss)", -90, 90, 0, 0), ("LONG", "Lon (dd:mm:ss)", 0, 360, 0, 0),
                                    ("ELEV", "Elevation (m)", -200, 10000, 0, 0)]),
           txt("TIME_UTC", [("UTC", "UTC Time", "2000-01-01T00:00:00"), ("OFFSET", "UTC Offset", "0")])),
))

WEATHER = 1 << 7


def weather_props(params: list[tuple[str, str, float, float, float, int]], critical: list[str],
                  safety_status: bool = False) -> tuple[Prop, ...]:
    """What INDI::Weather (indiweather.cpp) and WeatherInterface (indiweatherinterface.cpp) define
    after connecting; params are (name, label, MIN_OK, MAX_OK, PERC_WARN, ALERT_TYPE). ALERT_TYPE
    (flipped ranges) and SAFETY_STATUS exist from INDI 2.x on."""
    labels = {p[0]: p[1] for p in params}
    props: list[Prop] = [
        num("WEATHER_UPDATE", [("PERIOD", "Period (s)", 0, 3600, 60, 60)]),
        sw("WEATHER_REFRESH", [("REFRESH", "Refresh", False)], rule="AtMostOne"),
        sw("WEATHER_OVERRIDE", [("OVERRIDE", "Override Status", False)], rule="AnyOfMany"),
        ("light", "WEATHER_STATUS", "ro", None, [(c, labels[c], "Idle") for c in critical]),
    ]
    if safety_status:
        props.append(("light", "SAFETY_STATUS", "ro", None, [("SAFETY", "Safety", "Idle")]))
    props.append(num("WEATHER_PARAMETERS", [(n, label, lo, hi, 0, 0) for n, label, lo, hi, _w, _f in params],
                     perm="ro"))
    for n, _label, lo, hi, warn, flip in params:
        ranges: list[tuple[str, str, float, float, float, float]] = [
                  ("MIN_OK", "OK range min", -1e6, 1e6, 0, lo), ("MAX_OK", "OK range max", -1e6, 1e6, 0, hi),
                  ("PERC_WARN", "% for Warning", 0, 100, 5, warn)]
        if safety_status:
            ranges.append(("ALERT_TYPE", "Flip alerting to in-bounds", 0, 1, 1, flip))
        props.append(num(n, ranges))
    props += [num("GEOGRAPHIC_COORD", [("LAT", "Lat (dd:mm:ss)", -90, 90, 0, 0), ("LONG", "Lon (dd:mm:ss)", 0, 360, 0, 0),
                                       ("ELEV", "Elevation (m)", -200, 10000, 0, 0)]),
              txt("ACTIVE_DEVICES", [("ACTIVE_GPS", "GPS", "GPS Simulator")])]
    return tuple(props)


_add(Profile(
    "aag_cloudwatcher", "AAG Cloud Watcher NG", "weather", "indi-3rdparty indi-aagcloudwatcher-ng/"
    "indi_aagcloudwatcher_ng.cpp (initProperties) over INDI 2.x indiweatherinterface.cpp", WEATHER,
    props=weather_props([("WEATHER_WIND_SPEED", "Wind speed (Km/H)", 0, 30, 50, 0),
                         ("WEATHER_RAIN", "Rain (cycles)", 2000, 10000, 10, 0),
                         ("WEATHER_CLOUD", "Cloud (corrected infrared sky temperature °C)", -40, 60, 20, 1)],
                        ["WEATHER_WIND_SPEED", "WEATHER_RAIN", "WEATHER_CLOUD"], safety_status=True),
    quirks=frozenset({"indi2"}),
))
_add(Profile(
    "openweathermap", "OpenWeatherMap", "weather", "indi drivers/weather/openweathermap.cpp over INDI 1.9.9 "
    "indiweatherinterface.cpp (WEATHER_STATUS sent only when a light changes)", WEATHER,
    props=(*weather_props([("WEATHER_FORECAST", "Weather", 0, 0, 15, 0),
                           ("WEATHER_TEMPERATURE", "Temperature (C)", -10, 30, 15, 0),
                           ("WEATHER_PRESSURE", "Pressure (hPa)", 900, 1100, 15, 0),
                           ("WEATHER_HUMIDITY", "Humidity (%)", 0, 100, 15, 0),
                           ("WEATHER_WIND_SPEED", "Wind (m/s)", 0, 20, 15, 0),
                           ("WEATHER_RAIN_HOUR", "Rain precip (mm)", 0, 0, 15, 0),
                           ("WEATHER_SNOW_HOUR", "Snow precip (mm)", 0, 0, 15, 0),
                           ("WEATHER_CLOUD_COVER", "Clouds (%)", 0, 100, 15, 0),
                           ("WEATHER_CODE", "Status code", 200, 810, 15, 0)],
                          ["WEATHER_FORECAST", "WEATHER_TEMPERATURE", "WEATHER_WIND_SPEED", "WEATHER_RAIN_HOUR",
                           "WEATHER_SNOW_HOUR"]),
           txt("OWM_API_KEY", [("API_KEY", "API Key", "")])),
))

CAMERAS = [k for k, p in PROFILES.items() if p.kind == "camera"]
PANELS = ["flipflat", "dsd_fp", "pegasus_light+alnitak_cover"]
