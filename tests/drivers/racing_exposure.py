"""An INDI driver whose CCD_EXPOSURE keeps changing on its own, as a real camera's countdown does.

It sends `setNumberVector CCD_EXPOSURE` (value 0, Ok: the end of an exposure) every half
millisecond, and appends every exposure a client asks for to the file named by RACE_LOG. A client
that writes its value into libindi's copy of the property and then sends that copy can send the
driver's 0 instead of its own value; this driver makes that race visible.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import xml.etree.ElementTree as ET

DEVICE = "Race CCD"
_out = threading.Lock()


def send(xml: str) -> None:
    with _out:
        sys.stdout.write(xml)
        sys.stdout.flush()


def define() -> None:
    send(
        f"<defSwitchVector device='{DEVICE}' name='CONNECTION' label='Connection' group='Main' "
        "state='Ok' perm='rw' rule='OneOfMany' timeout='60'>"
        "<defSwitch name='CONNECT' label='Connect'>On</defSwitch>"
        "<defSwitch name='DISCONNECT' label='Disconnect'>Off</defSwitch></defSwitchVector>\n"
    )
    send(
        f"<defNumberVector device='{DEVICE}' name='CCD_EXPOSURE' label='Expose' group='Main' "
        "state='Idle' perm='rw' timeout='60'>"
        "<defNumber name='CCD_EXPOSURE_VALUE' label='Duration (s)' format='%5.2f' min='0.0001' "
        "max='3600' step='1'>0</defNumber></defNumberVector>\n"
    )


def countdown(stop: threading.Event) -> None:
    while not stop.is_set():
        send(
            f"<setNumberVector device='{DEVICE}' name='CCD_EXPOSURE' state='Ok'>"
            "<oneNumber name='CCD_EXPOSURE_VALUE'>0</oneNumber></setNumberVector>\n"
        )
        time.sleep(0.0005)


def main() -> None:
    log = open(os.environ["RACE_LOG"], "a", buffering=1)  # noqa: SIM115 - lives as long as the driver
    stop = threading.Event()
    threading.Thread(target=countdown, args=(stop,), daemon=True).start()
    parser = ET.XMLPullParser(events=("end",))
    parser.feed("<stream>")
    for chunk in iter(lambda: os.read(0, 65536), b""):
        parser.feed(chunk.decode())
        for _, element in parser.read_events():
            if element.tag == "getProperties":
                define()
            elif element.tag == "newNumberVector" and element.get("name") == "CCD_EXPOSURE":
                for one in element.iter("oneNumber"):
                    log.write(f"{float((one.text or '').strip())}\n")
    stop.set()


if __name__ == "__main__":
    main()
