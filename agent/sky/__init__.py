"""Pure astronomy: the target catalogue, the Sun's altitude and crossings, the offline IERS table. No devices."""
