"""The simulated cameras a config can name (`preset`): a small test sensor, two CMOS models and a CCD."""

from __future__ import annotations

from indi_sim.sensor import ReadoutMode, SensorSpec

PRESETS: dict[str, SensorSpec] = {
    "small": SensorSpec(
        name="Sim small CMOS", width=1024, height=768, pixel_size_um=3.75, bit_depth=12, kind="cmos", cfa=None,
        e_per_adu_native_at_gain0=3.6, gain_max=300, unity_gain=110, read_noise_e_gain0=3.5,
        read_noise_e_unity=1.6, full_well_e=14700.0, offset_max=100, offset_default=10, gain_default=0,
        offset_step_adu=16.0, bias_pixel_sigma_native=0.6, bias_column_sigma_native=0.4,
        dark_current_e_s=0.02, amp_glow_e=1.5,
    ),
    "imx294": SensorSpec(
        name="Sim IMX294", width=4144, height=2822, pixel_size_um=4.63, bit_depth=14, kind="cmos", cfa="RGGB",
        e_per_adu_native_at_gain0=4.0, gain_max=570, unity_gain=120, read_noise_e_gain0=7.3,
        read_noise_e_unity=1.3, full_well_e=65000.0, offset_max=255, offset_default=30, gain_default=120,
        offset_step_adu=4.0, bias_pixel_sigma_native=0.8, bias_column_sigma_native=0.5,
        dark_current_e_s=0.06, amp_glow_e=5.0, amp_glow_exponent=0.75,
    ),
    "imx571": SensorSpec(
        name="Sim IMX571", width=6248, height=4176, pixel_size_um=3.76, bit_depth=16, kind="cmos", cfa=None,
        e_per_adu_native_at_gain0=0.78, gain_max=280, unity_gain=100, read_noise_e_gain0=3.5,
        read_noise_e_unity=1.0, full_well_e=51000.0, offset_max=500, offset_default=50, gain_default=100,
        offset_step_adu=10.0, bias_pixel_sigma_native=2.0, bias_column_sigma_native=1.5,
        dark_current_e_s=0.06, dark_suppression=0.03, amp_glow_e=0.0,
    ),
    "ccd": SensorSpec(
        name="Sim KAF-8300", width=3326, height=2504, pixel_size_um=5.4, bit_depth=16, kind="ccd", cfa=None,
        e_per_adu_native_at_gain0=0.37, gain_max=0, unity_gain=0, read_noise_e_gain0=7.0,
        read_noise_e_unity=7.0, full_well_e=25500.0, offset_max=255, offset_default=100, gain_default=0,
        offset_step_adu=10.0, bias_pixel_sigma_native=3.0, bias_column_sigma_native=2.0,
        dark_current_e_s=0.065, amp_glow_e=0.0, prnu_sigma=0.01, shutter=True, min_exposure_s=0.001,
        readout_modes=(ReadoutMode("READOUT_NORMAL", "Normal"), ReadoutMode("READOUT_FAST", "Fast", 1.6, 5.0)),
        cooler_max_delta_c=40.0, cooler_rate_c_per_min=3.0,
    ),
}
