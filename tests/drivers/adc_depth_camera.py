"""An INDI camera publishing its bits as ZWO's driver does (indi-3rdparty indi-asi/asi_base.cpp):
CCD_INFO.CCD_BITSPERPIXEL is 16 for RAW16 and 8 for RAW8 (setupParams), and the read-only
ADC_DEPTH.BITS is the sensor's ADC depth (mCameraInfo.BitDepth). The depths come from ADC_BITS and
PIXEL_BITS in the environment."""

from __future__ import annotations

import os
import sys

DEVICE = "ADC CCD"


def define() -> None:
    adc, pixel = os.environ.get("ADC_BITS", "14"), os.environ.get("PIXEL_BITS", "16")
    sys.stdout.write(
        f"<defSwitchVector device='{DEVICE}' name='CONNECTION' label='Connection' group='Main' "
        "state='Ok' perm='rw' rule='OneOfMany' timeout='60'>"
        "<defSwitch name='CONNECT' label='Connect'>On</defSwitch>"
        "<defSwitch name='DISCONNECT' label='Disconnect'>Off</defSwitch></defSwitchVector>\n"
        f"<defNumberVector device='{DEVICE}' name='CCD_INFO' label='CCD Information' group='Image Info' "
        "state='Idle' perm='ro' timeout='60'>"
        "<defNumber name='CCD_MAX_X' label='Max. Width' format='%.f' min='1' max='16000' step='0'>4144</defNumber>"
        "<defNumber name='CCD_MAX_Y' label='Max. Height' format='%.f' min='1' max='16000' step='0'>2822</defNumber>"
        "<defNumber name='CCD_PIXEL_SIZE' label='Pixel size (um)' format='%.2f' min='1' max='40' step='0'>4.63</defNumber>"
        f"<defNumber name='CCD_BITSPERPIXEL' label='Bits per pixel' format='%.f' min='8' max='64' step='0'>{pixel}</defNumber>"
        "</defNumberVector>\n"
        f"<defNumberVector device='{DEVICE}' name='ADC_DEPTH' label='ADC Depth' group='Image Info' "
        "state='Idle' perm='ro' timeout='60'>"
        f"<defNumber name='BITS' label='Bits' format='%2.0f' min='0' max='32' step='1'>{adc}</defNumber>"
        "</defNumberVector>\n"
    )
    sys.stdout.flush()


def main() -> None:
    for line in sys.stdin:
        if "getProperties" in line:
            define()


if __name__ == "__main__":
    main()
