"""Rebuild regions_cn.json from the shared fixture files (run by hand, never at run time):

    python orders/platforms/data/build_regions.py ../shared/fixtures/regions

Source: modood/Administrative-divisions-of-China dist/provinces.json + dist/cities.json
(commit 57a0aa9cef47169a2eb74cf057b0245052a34e8c; NBS 统计用区划代码 2023), licence WTFPL.
"""

import json
import sys
from pathlib import Path

MUNICIPALITIES = {"11", "12", "31", "50"}


def build(source: Path) -> dict:
    provinces = json.loads((source / "provinces.json").read_text(encoding="utf-8"))
    cities = json.loads((source / "cities.json").read_text(encoding="utf-8"))
    out = []
    for p in provinces:
        out.append({
            "code": p["code"], "name": p["name"], "municipality": p["code"] in MUNICIPALITIES,
            "cities": [c["name"] for c in cities if c["provinceCode"] == p["code"]],
        })
    return {
        "_source": "modood/Administrative-divisions-of-China dist/provinces.json + dist/cities.json "
                   "(commit 57a0aa9cef47169a2eb74cf057b0245052a34e8c), National Bureau of Statistics "
                   "统计用区划代码 2023 (cut-off 2023-06-30)",
        "_licence": "WTFPL",
        "_built_by": "orders/platforms/data/build_regions.py",
        "provinces": out,
    }


if __name__ == "__main__":
    data = build(Path(sys.argv[1]))
    target = Path(__file__).with_name("regions_cn.json")
    target.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"{target}: {len(data['provinces'])} provinces, {sum(len(p['cities']) for p in data['provinces'])} cities")
