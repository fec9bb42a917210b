"""Where regions are and how far apart: great-circle distance, normalised for scoring."""

from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0
# Half the Earth's circumference: no two points are further apart, so distance / this is in [0, 1].
MAX_DISTANCE_KM = 20_000.0
# A region we have no coordinates for is treated as half a world away: neither preferred nor shunned.
UNKNOWN_DISTANCE_KM = MAX_DISTANCE_KM / 2

# (latitude, longitude) of each cloud region's metro area.
REGION_COORDINATES: dict[str, tuple[float, float]] = {
    "us-east-1": (38.95, -77.45),  # N. Virginia
    "us-east-2": (39.96, -83.00),  # Ohio
    "us-west-1": (37.35, -121.96),  # N. California
    "us-west-2": (45.84, -119.70),  # Oregon
    "ca-central-1": (45.50, -73.57),  # Montreal
    "sa-east-1": (-23.55, -46.63),  # Sao Paulo
    "eu-west-1": (53.35, -6.26),  # Dublin
    "eu-west-2": (51.51, -0.13),  # London
    "eu-central-1": (50.11, 8.68),  # Frankfurt
    "eu-north-1": (59.33, 18.07),  # Stockholm
    "ap-south-1": (19.08, 72.88),  # Mumbai
    "ap-southeast-1": (1.35, 103.82),  # Singapore
    "ap-southeast-2": (-33.87, 151.21),  # Sydney
    "ap-northeast-1": (35.68, 139.69),  # Tokyo
}


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in km between two (latitude, longitude) points."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


def region_distance_km(a: str, b: str) -> float:
    """Distance between two regions; 0 for the same region, a neutral half-world when one is unknown."""
    if a == b:
        return 0.0
    if a not in REGION_COORDINATES or b not in REGION_COORDINATES:
        return UNKNOWN_DISTANCE_KM
    return haversine_km(REGION_COORDINATES[a], REGION_COORDINATES[b])


def normalised_distance(a: str, b: str) -> float:
    """Distance as a fraction of the furthest two points on Earth can be (0 = same place)."""
    return min(1.0, region_distance_km(a, b) / MAX_DISTANCE_KM)
