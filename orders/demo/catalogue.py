"""The demo's catalogue: shops, warehouses, SKUs, opening stock, inbound, routing rules, staff.

Plain data: the runner (`orders.demo.runner`) creates the rows from these tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal

from inventory.models import RoutingRule, Warehouse
from orders.models import Platform

D = Decimal

DEFAULT_PASSWORD = "orderhub-demo"
DEFAULT_WEBHOOK_SECRET = "demo-webhook-secret"
DEFAULT_ORDERS = 300
DEFAULT_SEED = 2024
RECEIPT_REASON = "期初入库(演示数据)"
_BASE = f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"  # `make run` passes PORT
URLS = [
    ("后台 Admin", f"{_BASE}/admin/"),
    ("REST API", f"{_BASE}/api/v1/"),
    ("API 文档", f"{_BASE}/api/docs/"),
    ("健康检查", f"{_BASE}/healthz"),
]

# --- catalogue ------------------------------------------------------------------------------
# code, platform, name, currency, time zone, ship-within hours
SHOPS = [
    ("demo-taobao", Platform.TAOBAO, "好物家居天猫旗舰店", "CNY", "Asia/Shanghai", 48),
    ("demo-jd", Platform.JD, "好物家居京东旗舰店", "CNY", "Asia/Shanghai", 24),
    ("demo-pdd", Platform.PDD, "好物家居拼多多店", "CNY", "Asia/Shanghai", 48),
    ("demo-douyin", Platform.DOUYIN, "好物家居抖音小店", "CNY", "Asia/Shanghai", 48),
    ("demo-miniapp", Platform.MINIAPP, "好物家居微信商城", "CNY", "Asia/Shanghai", 72),
    ("demo-shopify", Platform.SHOPIFY, "HaoWu Home (Shopify)", "USD", "America/New_York", 72),
    ("demo-amazon", Platform.AMAZON, "HaoWu Home US (Amazon)", "USD", "America/Los_Angeles", 48),
]
SHOP_CODES = [s[0] for s in SHOPS]
# A live stream for the demo: the sandbox platform, synced every minute by the qcluster that
# `make run` starts, so new orders keep arriving (no network: it answers in-process).
SANDBOX_SHOP = ("demo-sandbox", Platform.SANDBOX, "沙箱演示店(实时订单流)", "CNY", "Asia/Shanghai", 48)
US_PLATFORMS = {Platform.SHOPIFY, Platform.AMAZON}

# code, name, kind, country, province, city, region, priority, lead_time_days, allocatable, address
WAREHOUSES = [
    ("suzhou", "苏州仓", Warehouse.Kind.OWN, "CN", "江苏省", "苏州市", "华东", 10, 0, True, "吴中区越溪街道吴中大道 2588 号物流园 3 号库"),
    ("tianjin", "天津仓", Warehouse.Kind.OWN, "CN", "天津市", "天津市", "华北", 20, 0, True, "东丽区空港经济区东九道 18 号"),
    ("shenzhen", "深圳仓", Warehouse.Kind.OWN, "CN", "广东省", "深圳市", "华南", 30, 0, True, "龙岗区平湖街道华南城物流中心 B2 栋"),
    ("ningbo-bonded", "宁波保税仓", Warehouse.Kind.BONDED, "CN", "浙江省", "宁波市", "华东", 40, 0, True, "北仑区保税区港东大道 7 号"),
    ("yiwu-returns", "义乌退货仓", Warehouse.Kind.RETURN_CENTER, "CN", "浙江省", "金华市", "华东", 90, 0, False, "义乌市稠江街道电商园 12 幢"),
    ("la-overseas", "洛杉矶海外仓", Warehouse.Kind.OVERSEAS, "US", "California", "Los Angeles", "北美", 50, 2, True,
     "2800 E Victoria St, Rancho Dominguez, CA 90220"),
]

# The sender printed on e-waybills (电子面单): contact, phone, district (demo values).
WAREHOUSE_SENDERS = {
    "suzhou": ("苏州仓发货组", "0512-60000000", "吴中区"),
    "tianjin": ("天津仓发货组", "022-60000000", "东丽区"),
    "shenzhen": ("深圳仓发货组", "0755-60000000", "龙岗区"),
    "ningbo-bonded": ("宁波保税仓发货组", "0574-60000000", "北仑区"),
    "yiwu-returns": ("义乌退货仓", "0579-60000000", "义乌市"),
    "la-overseas": ("LA Warehouse", "+1 310 555 0100", ""),
}


@dataclass(frozen=True)
class SkuSpec:
    code: str
    name: str
    category: str
    price: Decimal  # CNY
    usd: Decimal | None = None  # sold on the US shops when set
    safety: int = 20
    tax_exempt: bool = False


SKUS = [
    SkuSpec("ZDP-001", "硅胶折叠洗脸盆 中号 浅蓝", "折叠盆", D("29.90"), safety=30),
    SkuSpec("ZDP-002", "硅胶折叠洗脸盆 大号 米白", "折叠盆", D("39.90"), safety=30),
    SkuSpec("ZDP-003", "户外折叠水桶 10L 钓鱼洗车", "折叠盆", D("49.00")),
    SkuSpec("ZDP-004", "加厚折叠洗衣盆 45cm", "折叠盆", D("35.90")),
    SkuSpec("ZDP-005", "婴儿折叠浴盆 带温度计", "折叠盆", D("129.00"), safety=10),
    SkuSpec("ZDP-006", "便携折叠泡脚盆 40cm", "折叠盆", D("59.00")),
    SkuSpec("SN-001", "透明磁吸鞋盒 6 只装", "收纳", D("59.90"), usd=D("24.99")),
    SkuSpec("SN-002", "真空压缩收纳袋 8 件套 送手泵", "收纳", D("39.90"), usd=D("19.99")),
    SkuSpec("SN-003", "桌面抽屉收纳盒 三层", "收纳", D("45.00"), usd=D("21.99")),
    SkuSpec("SN-004", "衣柜分层收纳隔板 4 片", "收纳", D("32.80")),
    SkuSpec("SN-005", "可折叠收纳凳 大号 可坐", "收纳", D("89.00"), safety=10),  # new: nothing in stock yet
    SkuSpec("SN-006", "冰箱保鲜收纳盒 4 件套", "收纳", D("49.90"), usd=D("22.99")),
    SkuSpec("CJ-001", "麦饭石不粘炒锅 32cm 燃气电磁炉通用", "厨具", D("169.00"), safety=10),
    SkuSpec("CJ-002", "整竹加厚砧板 45×30cm", "厨具", D("59.00"), usd=D("29.99")),
    SkuSpec("CJ-003", "德式不锈钢刀具 5 件套", "厨具", D("199.00"), safety=10),
    SkuSpec("CJ-004", "耐热玻璃保鲜盒 10 件套", "厨具", D("89.00"), usd=D("34.99")),
    SkuSpec("CJ-005", "食品级硅胶锅铲 3 件套", "厨具", D("29.90"), usd=D("15.99")),
    SkuSpec("QJ-001", "超细纤维清洁布 10 条装", "清洁", D("19.90"), usd=D("9.99"), safety=50),
    SkuSpec("QJ-002", "免手洗平板拖把 送 2 块拖布", "清洁", D("89.00"), usd=D("39.99")),
    SkuSpec("QJ-003", "壁挂式马桶刷套装", "清洁", D("25.90")),
    SkuSpec("QJ-004", "厨房重油污清洁剂 500ml×2", "清洁", D("32.90")),
    SkuSpec("QJ-005", "进口除螨洗衣液 3kg", "清洁", D("59.90")),
    SkuSpec("MY-001", "婴儿手口湿巾 80 抽×6 包", "母婴", D("49.90"), safety=30),
    SkuSpec("MY-002", "宝宝硅胶辅食碗 吸盘套装", "母婴", D("79.00")),
    SkuSpec("MY-003", "进口 PPSU 婴儿奶瓶 240ml", "母婴", D("159.00"), safety=10),
    SkuSpec("MY-004", "儿童吸管水杯 450ml", "母婴", D("69.00")),
    SkuSpec("MY-005", "进口婴儿洗发沐浴露二合一 500ml", "母婴", D("118.00"), safety=10),
    SkuSpec("RY-001", "新疆长绒棉加厚浴巾 2 条装", "日用", D("79.00")),
    SkuSpec("RY-002", "免打孔无痕挂钩 20 只", "日用", D("15.90"), usd=D("7.99")),
    SkuSpec("NC-001", "五常有机稻花香大米 5kg", "农产品", D("99.00"), tax_exempt=True),
    SkuSpec("NC-002", "新疆若羌灰枣 1kg", "农产品", D("45.00"), tax_exempt=True),
]
SKU_BY_CODE = {s.code: s for s in SKUS}
OUT_OF_STOCK = "SN-005"
GIFT = "QJ-001"
BONDED_ONLY = {"MY-003", "MY-005"}
FOLDING = "折叠盆"


def _opening_stock() -> dict[tuple[str, str], int]:
    """(warehouse, SKU) → quantity received at seeding (scaled up for large --orders)."""
    stock: dict[tuple[str, str], int] = {}
    for spec in SKUS:
        if spec.code == OUT_OF_STOCK:
            continue
        if spec.category == FOLDING:
            stock[("shenzhen", spec.code)] = 400
            continue
        if spec.code in BONDED_ONLY:
            stock[("ningbo-bonded", spec.code)] = 150
            continue
        stock[("suzhou", spec.code)] = 300
        stock[("tianjin", spec.code)] = 200
        if spec.category in {"厨具", "清洁"}:
            stock[("shenzhen", spec.code)] = 120
        if spec.usd is not None:
            stock[("la-overseas", spec.code)] = 150
    stock[("ningbo-bonded", "QJ-005")] = 120
    return stock


STOCK = _opening_stock()

# Informational only: inbound quantity and ETA (days from today); never sellable.
INBOUND = [
    ("suzhou", OUT_OF_STOCK, 600, 5),
    ("tianjin", "QJ-002", 200, 3),
    ("la-overseas", "SN-001", 300, 18),
    ("la-overseas", "CJ-004", 240, 18),
    ("ningbo-bonded", "MY-003", 500, 9),
]

# position, name, warehouse, conditions, note, mode. The seller's "折叠盆 anywhere → 深圳仓" is
# strict: short stock there holds the order; the others fall back to the other warehouses.
STRICT, PREFERRED = RoutingRule.Mode.STRICT, RoutingRule.Mode.PREFERRED
RULES = [
    (10, "江浙沪非折叠盆 → 苏州仓", "suzhou",
     {"all": [{"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]},
              {"not": {"field": "sku_category", "op": "eq", "value": FOLDING}}]},
     "江浙沪地区除折叠盆以外的商品由苏州仓发货", PREFERRED),
    (20, "折叠盆 → 深圳仓", "shenzhen", {"field": "sku_category", "op": "eq", "value": FOLDING},
     "折叠盆全部由深圳仓(靠近工厂)发货", STRICT),
    (30, "华北 → 天津仓", "tianjin", {"field": "region", "op": "eq", "value": "华北"}, "华北地区就近从天津仓发货",
     PREFERRED),
]

# username, role (None = superuser), last name, first name
USERS = [
    ("cs", "customer_service", "王", "小美"),
    ("warehouse", "warehouse", "张", "大力"),
    ("finance", "finance", "李", "晓红"),
    ("ops", "operations", "陈", "一帆"),
    ("supervisor", "supervisor", "刘", "建国"),
    ("admin", None, "", "管理员"),
]
