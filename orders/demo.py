"""Demo data: shops, warehouses, SKUs, stock, routing rules, staff and a few hundred orders.

Used by `python manage.py seed_demo`. Everything is created through the same services
the rest of the system uses — stock through `inventory.services.stock_receive`, every
order change through `orders.services` with `at=` to backdate it — so the ledger
balances, each order has a believable timeline, and nothing is set directly.

The whole first run is one transaction: either everything is seeded or nothing is. A
second run finds the demo shops, resets the staff passwords and webhook secrets, and
leaves everything else alone. Orders are generated from `random.Random(seed)`, so the
same seed gives the same orders (relative to the moment of seeding).
"""

from __future__ import annotations

import logging
import os
import random
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Callable
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from config import roles
from config.actors import Actor, Source
from inventory import services as inventory
from inventory.audit import audit
from inventory.models import Reservation, RoutingRule, Sku, SkuMapping, StockLevel, StockMove, Warehouse
from orders import services
from orders.models import HoldReason, Order, OrderStatus, Platform, Shop
from orders.platforms.base import NormalizedLine, NormalizedOrder

ACTOR = Actor.system("seed_demo", source=Source.SYSTEM)
DEFAULT_PASSWORD = "orderhub-demo"
DEFAULT_WEBHOOK_SECRET = "demo-webhook-secret"
DEFAULT_ORDERS = 300
DEFAULT_SEED = 2024
RECEIPT_REASON = "期初入库(演示数据)"
DEMO_PHONE = "13912345678"  # a customer with orders on several channels, for the H5 portal
_BASE = f"http://127.0.0.1:{os.environ.get('PORT') or 8000}"  # `make run` passes PORT
URLS = [
    ("后台 Admin", f"{_BASE}/admin/"),
    ("REST API", f"{_BASE}/api/v1/"),
    ("API 文档", f"{_BASE}/api/docs/"),
    ("健康检查", f"{_BASE}/healthz"),
]
D = Decimal

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

# (warehouse, SKU) → quantity received at seeding (scaled up for large --orders).
STOCK: dict[tuple[str, str], int] = {}
for _s in SKUS:
    if _s.code == OUT_OF_STOCK:
        continue
    if _s.category == FOLDING:
        STOCK[("shenzhen", _s.code)] = 400
        continue
    if _s.code in BONDED_ONLY:
        STOCK[("ningbo-bonded", _s.code)] = 150
        continue
    STOCK[("suzhou", _s.code)] = 300
    STOCK[("tianjin", _s.code)] = 200
    if _s.category in {"厨具", "清洁"}:
        STOCK[("shenzhen", _s.code)] = 120
    if _s.usd is not None:
        STOCK[("la-overseas", _s.code)] = 150
STOCK[("ningbo-bonded", "QJ-005")] = 120
# Informational only: inbound quantity and ETA (days from today); never sellable.
INBOUND = [
    ("suzhou", OUT_OF_STOCK, 600, 5),
    ("tianjin", "QJ-002", 200, 3),
    ("la-overseas", "SN-001", 300, 18),
    ("la-overseas", "CJ-004", 240, 18),
    ("ningbo-bonded", "MY-003", 500, 9),
]

RULES = [
    (10, "江浙沪非折叠盆 → 苏州仓", "suzhou",
     {"all": [{"field": "province", "op": "in", "value": ["江苏", "浙江", "上海"]},
              {"not": {"field": "sku_category", "op": "eq", "value": FOLDING}}]},
     "江浙沪地区除折叠盆以外的商品由苏州仓发货"),
    (20, "折叠盆 → 深圳仓", "shenzhen", {"field": "sku_category", "op": "eq", "value": FOLDING},
     "折叠盆全部由深圳仓(靠近工厂)发货"),
    (30, "华北 → 天津仓", "tianjin", {"field": "region", "op": "eq", "value": "华北"}, "华北地区就近从天津仓发货"),
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

# --- people and places ------------------------------------------------------------------------
SURNAMES = list("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚卢姜崔钟谭陆汪范金石廖贾夏韦方白邹孟熊秦邱江尹薛段雷侯龙史陶贺顾毛郝龚邵万钱严武戴孔汤")
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
         "秀兰", "霞", "平", "刚", "婷", "雪", "慧", "晨", "宇", "浩", "欣怡", "子涵", "梓萱", "一诺", "雨桐", "思远",
         "佳怡", "俊杰", "浩然", "子轩", "宇航", "雅婷", "晓燕", "海燕", "丹", "颖", "琳", "倩", "萌", "晓东", "志强",
         "春梅", "文博", "嘉欣", "诗涵", "明轩", "美玲", "建华", "玉兰", "国庆", "海波", "梦瑶"]
MOBILE_PREFIXES = ["134", "135", "136", "137", "138", "139", "147", "150", "151", "152", "157", "158", "159", "178",
                   "182", "183", "187", "188", "198", "130", "131", "132", "155", "156", "166", "175", "176", "185",
                   "186", "133", "153", "173", "177", "180", "181", "189", "199"]
# province → [(city, postcode, [districts])], weight (rough share of e-commerce parcels)
PLACES: dict[str, tuple[int, list[tuple[str, str, list[str]]]]] = {
    "江苏省": (12, [("苏州市", "215000", ["姑苏区", "工业园区", "吴中区", "昆山市"]), ("南京市", "210000", ["鼓楼区", "玄武区", "江宁区"]),
                  ("无锡市", "214000", ["梁溪区", "滨湖区"]), ("常州市", "213000", ["武进区", "天宁区"])]),
    "浙江省": (11, [("杭州市", "310000", ["西湖区", "余杭区", "滨江区", "拱墅区"]), ("宁波市", "315000", ["鄞州区", "海曙区"]),
                  ("温州市", "325000", ["鹿城区"])]),
    "上海市": (9, [("上海市", "200000", ["浦东新区", "徐汇区", "静安区", "闵行区", "杨浦区"])]),
    "广东省": (14, [("广州市", "510000", ["天河区", "越秀区", "番禺区", "海珠区"]), ("深圳市", "518000", ["南山区", "福田区", "宝安区", "龙岗区"]),
                  ("东莞市", "523000", ["南城街道", "松山湖"]), ("佛山市", "528000", ["禅城区", "顺德区"])]),
    "北京市": (7, [("北京市", "100000", ["朝阳区", "海淀区", "丰台区", "西城区", "通州区"])]),
    "天津市": (3, [("天津市", "300000", ["南开区", "河西区", "滨海新区"])]),
    "河北省": (3, [("石家庄市", "050000", ["长安区", "裕华区"]), ("保定市", "071000", ["竞秀区"])]),
    "山西省": (1, [("太原市", "030000", ["小店区", "迎泽区"])]),
    "内蒙古自治区": (1, [("呼和浩特市", "010000", ["赛罕区"])]),
    "山东省": (6, [("济南市", "250000", ["历下区", "槐荫区"]), ("青岛市", "266000", ["市南区", "黄岛区"])]),
    "福建省": (4, [("厦门市", "361000", ["思明区", "湖里区"]), ("福州市", "350000", ["鼓楼区"])]),
    "安徽省": (3, [("合肥市", "230000", ["蜀山区", "包河区"])]),
    "江西省": (2, [("南昌市", "330000", ["红谷滩区"])]),
    "湖北省": (4, [("武汉市", "430000", ["洪山区", "江汉区", "武昌区"])]),
    "湖南省": (3, [("长沙市", "410000", ["岳麓区", "雨花区"])]),
    "河南省": (4, [("郑州市", "450000", ["金水区", "郑东新区"])]),
    "四川省": (5, [("成都市", "610000", ["武侯区", "锦江区", "高新区"])]),
    "重庆市": (3, [("重庆市", "400000", ["渝北区", "江北区", "九龙坡区"])]),
    "陕西省": (2, [("西安市", "710000", ["雁塔区", "未央区"])]),
    "辽宁省": (2, [("沈阳市", "110000", ["和平区"]), ("大连市", "116000", ["沙河口区"])]),
    "黑龙江省": (1, [("哈尔滨市", "150000", ["南岗区"])]),
    "广西壮族自治区": (1, [("南宁市", "530000", ["青秀区"])]),
    "云南省": (1, [("昆明市", "650000", ["五华区"])]),
    "海南省": (1, [("海口市", "570000", ["龙华区"])]),
    "新疆维吾尔自治区": (1, [("乌鲁木齐市", "830000", ["天山区"])]),
}
JZH = ["江苏省", "浙江省", "上海市"]
STREETS = ["人民路", "中山路", "解放路", "建设路", "和平路", "长江路", "新华路", "文化路", "学府路", "滨河路", "星湖街",
           "青年路", "光明路", "幸福大道", "科技园路", "东风路", "迎宾大道", "南京路", "西湖大道", "朝阳北路"]
COMPOUNDS = ["阳光花园", "翠苑小区", "锦绣江南", "万科城", "碧桂园", "绿地新都会", "金色家园", "幸福里", "世纪华庭",
             "龙湖春江郦城", "保利香槟国际", "中海寰宇天下", "华润城", "恒大名都", "和谐家园"]
US_FIRST = ["James", "Mary", "John", "Patricia", "Robert", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
            "Emily", "Daniel", "Sarah", "Kevin", "Jessica", "Brian", "Ashley", "Grace", "Ethan", "Olivia"]
US_LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
           "Wilson", "Anderson", "Taylor", "Thomas", "Moore", "Chen", "Nguyen", "Kim", "Lee", "Wang"]
# state, city, zip, area code
US_PLACES = [("New York", "New York", "10001", "212"), ("California", "Los Angeles", "90012", "213"),
             ("California", "San Jose", "95112", "408"), ("Washington", "Seattle", "98101", "206"),
             ("Texas", "Austin", "78701", "512"), ("Illinois", "Chicago", "60601", "312"),
             ("Massachusetts", "Boston", "02108", "617"), ("Florida", "Miami", "33130", "305"),
             ("New Jersey", "Jersey City", "07302", "201")]
US_STREETS = ["Main St", "Oak Ave", "Maple Dr", "Park Ave", "Cedar Ln", "Elm St", "Washington Blvd", "Lake Shore Dr"]

BUYER_NOTES = ["请尽快发货,谢谢!", "不要放快递柜,放门卫就行", "送人的,包裹里不要放价格单", "麻烦发顺丰,运费可以补",
               "颜色要浅蓝色的", "周末家里没人,请工作日送", "麻烦包装结实一点,上次压坏了", "老客户了,多送点小礼品呗",
               "请开发票,抬头见订单", "收到后会给好评"]
SELLER_NOTES = ["老客户,加送清洁布一条", "已电话确认地址", "直播间福利单", "买家要求周一发货", "VIP 客户,优先处理"]
MANUAL_HOLDS = ["买家来电要求暂缓发货,等通知", "买家申请修改规格,待确认", "买家要求与另一笔订单合并发货"]
CHECK_HOLDS = [(HoldReason.ADDRESS, "收件地址不完整,已联系买家补充门牌号"),
               (HoldReason.RISK, "同一地址短时间内多笔大额订单,人工审核")]
CANCEL_REASONS = ["买家拍错了,重新下单", "买家不想要了", "地址填错,买家申请退款", "协商一致取消"]
RETURN_REASONS = ["七天无理由退货", "质量问题: 盆底漏水", "尺寸不合适", "收到商品破损", "与描述不符"]
COMPANIES = ["苏州清源贸易有限公司", "杭州云帆科技有限公司", "上海禾丰餐饮管理有限公司", "广州市佳美家居用品有限公司",
             "北京知行教育咨询有限公司", "成都锦程物业服务有限公司", "深圳市前海创享电子商务有限公司"]
SOURCE_DETAILS = {
    Platform.TAOBAO: ["淘宝直播: 好物家居官方直播间", "聚划算", "天猫超级品牌日", "88VIP 专享"],
    Platform.JD: ["京东秒杀", "PLUS 会员日", "京东百亿补贴"],
    Platform.PDD: ["百亿补贴", "限时秒杀", "多多买菜推荐"],
    Platform.DOUYIN: ["直播间: 家居好物小王", "直播间: 好物家居官方号", "短视频带货: @收纳达人阿雅", "精选联盟"],
    Platform.MINIAPP: ["社群团购", "朋友圈海报", "企业微信导购: 小美"],
    Platform.SHOPIFY: ["Facebook Ads", "Google Shopping", "Newsletter"],
    Platform.AMAZON: ["Lightning Deal", "Sponsored Products"],
}
MEMBER_LEVELS = {
    Platform.TAOBAO: [("88VIP", True), ("超级会员", False)],
    Platform.JD: [("PLUS会员", True), ("金牌会员", False)],
    Platform.MINIAPP: [("金卡", True), ("银卡", False)],
    Platform.AMAZON: [("Prime", True)],
}
CARRIERS_CN = ["ZTO", "YTO", "YD", "JTSD", "SF"]  # KDNiao shipper codes: 中通 圆通 韵达 极兔 顺丰
CARRIERS_US = ["USPS", "UPS"]

# Platform status codes as the platforms publish them (../shared/fixtures/STATUS_CODES.md).
PLATFORM_STATUS = {
    Platform.TAOBAO: {"pending": "WAIT_BUYER_PAY", "paid": "WAIT_SELLER_SEND_GOODS", "partial": "SELLER_CONSIGNED_PART",
                      "shipped": "WAIT_BUYER_CONFIRM_GOODS", "completed": "TRADE_FINISHED",
                      "closed_unpaid": "TRADE_CLOSED_BY_TAOBAO", "closed": "TRADE_CLOSED"},
    Platform.JD: {"pending": "WAIT_PAY", "paid": "WAIT_SELLER_STOCK_OUT", "partial": "WAIT_SELLER_STOCK_OUT",
                  "shipped": "WAIT_GOODS_RECEIVE_CONFIRM", "completed": "FINISHED_L",
                  "closed_unpaid": "TRADE_CANCELED", "closed": "TRADE_CANCELED"},
    Platform.PDD: {"pending": "", "paid": "1", "partial": "1", "shipped": "2", "delivered": "3", "completed": "3",
                   "closed_unpaid": "", "closed": "1"},
    Platform.DOUYIN: {"pending": "1", "paid": "105", "allocated": "2", "partial": "101", "shipped": "3",
                      "completed": "5", "closed_unpaid": "4", "closed": "4"},
    Platform.MINIAPP: {"pending": "WAIT_PAY", "paid": "PAID", "partial": "PART_SHIPPED", "shipped": "SHIPPED",
                       "completed": "FINISHED", "closed_unpaid": "CLOSED", "closed": "REFUNDED"},
    Platform.SHOPIFY: {"pending": "pending", "paid": "paid", "partial": "paid", "shipped": "paid", "completed": "paid",
                       "closed_unpaid": "voided", "closed": "refunded"},
    Platform.AMAZON: {"pending": "Pending", "paid": "Unshipped", "partial": "PartiallyShipped", "shipped": "Shipped",
                      "completed": "Shipped", "closed_unpaid": "Canceled", "closed": "Canceled"},
}


# --- scenarios: where each order ends up and how it gets there ----------------------------
# name → (weight, final platform-status key)
SCENARIOS = {
    "pending_payment": (5, "pending"),
    "paid": (6, "paid"),
    "paid_presale": (3, "paid"),
    "hold_stock_short": (3, "paid"),
    "hold_sku_unmapped": (2, "paid"),
    "hold_manual": (3, "paid"),
    "hold_check": (1, "paid"),
    "hold_reservation_expired": (1, "paid"),
    "allocated": (8, "allocated"),
    "packed": (6, "allocated"),
    "partially_shipped": (2, "partial"),
    "shipped": (12, "shipped"),
    "delivered": (12, "delivered"),
    "completed": (26, "completed"),
    "cancelled_unpaid": (3, "closed_unpaid"),
    "cancelled_paid": (2, "closed"),
    "cancelled_allocated": (1, "closed"),
    "returned": (4, "closed"),
}
UNPAID = {"pending_payment", "cancelled_unpaid"}
CN_ONLY = {"hold_stock_short", "partially_shipped", "paid_presale"}
US_ONLY = {"hold_reservation_expired"}
NOT_ON = {Platform.JD: UNPAID, Platform.PDD: UNPAID}  # these platforms only hand over paid orders
PLATFORM_WEIGHTS = {Platform.TAOBAO: 30, Platform.JD: 15, Platform.PDD: 18, Platform.DOUYIN: 15,
                    Platform.MINIAPP: 8, Platform.SHOPIFY: 7, Platform.AMAZON: 7}


@dataclass
class Step:
    action: str  # a key of STEP_ACTIONS
    after: timedelta  # time since the previous step
    params: dict = field(default_factory=dict)


@dataclass
class Plan:
    scenario: str
    shop_code: str
    data: NormalizedOrder
    paid_after: timedelta | None  # None: never paid
    steps: list[Step]
    max_age: timedelta  # how far back the order may have been placed


@dataclass
class SeedResult:
    created: bool
    orders: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_hold_reason: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def _minutes(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(minutes=rng.uniform(low, high))


def _hours(rng: random.Random, low: float, high: float) -> timedelta:
    return timedelta(hours=rng.uniform(low, high))


def _digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def _ean13(rng: random.Random) -> str:
    """A valid EAN-13 with the GS1 China prefix 69x."""
    body = "69" + _digits(rng, 10)
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28]


def _tax_number(rng: random.Random) -> str:
    """A unified social credit code (统一社会信用代码, GB 32100-2015) with a valid check character."""
    body = "91" + rng.choice(["320500", "330100", "310115", "440106", "110105", "510107", "440300"])
    body += "".join(rng.choice(_USCC_CHARS) for _ in range(9))
    check = (31 - sum(_USCC_CHARS.index(c) * w for c, w in zip(body, _USCC_WEIGHTS)) % 31) % 31
    return body + _USCC_CHARS[check]


def _platform_sku_id(rng: random.Random, platform: str, sku_code: str) -> str:
    return {
        Platform.TAOBAO: lambda: "5" + _digits(rng, 12),
        Platform.JD: lambda: "100" + _digits(rng, 9),
        Platform.PDD: lambda: "1" + _digits(rng, 10),
        Platform.DOUYIN: lambda: "17" + _digits(rng, 17),
        Platform.MINIAPP: lambda: sku_code,
        Platform.SHOPIFY: lambda: "4" + _digits(rng, 13),
        Platform.AMAZON: lambda: f"HW-{sku_code}-US",
    }[platform]()


def _platform_order_id(rng: random.Random, platform: str, placed: datetime) -> str:
    return {
        Platform.TAOBAO: lambda: "3" + _digits(rng, 18),
        Platform.JD: lambda: "29" + _digits(rng, 10),
        Platform.PDD: lambda: f"{placed:%y%m%d}-{_digits(rng, 15)}",
        Platform.DOUYIN: lambda: "69" + _digits(rng, 17),
        Platform.MINIAPP: lambda: f"MP{placed:%Y%m%d}{_digits(rng, 6)}",
        Platform.SHOPIFY: lambda: "5" + _digits(rng, 12),
        Platform.AMAZON: lambda: f"11{rng.randint(1, 4)}-{_digits(rng, 7)}-{_digits(rng, 7)}",
    }[platform]()


_UPS_CHARS = "0123456789ABCDEFGHJKLMNPRSTUVWXY"


def _tracking(rng: random.Random, carrier: str) -> str:
    return {
        "SF": lambda: "SF" + _digits(rng, 13),
        "ZTO": lambda: "78" + _digits(rng, 12),
        "YTO": lambda: "YT" + _digits(rng, 13),
        "YD": lambda: "43" + _digits(rng, 11),
        "JTSD": lambda: "JT" + _digits(rng, 13),
        "JD": lambda: "JDVA" + _digits(rng, 11),
        "USPS": lambda: "9400" + _digits(rng, 18),
        "UPS": lambda: "1Z" + "".join(rng.choice(_UPS_CHARS) for _ in range(6)) + "03" + _digits(rng, 8),
    }[carrier]()


@dataclass(frozen=True)
class Person:
    name: str
    phone: str
    province: str
    city: str
    district: str
    address: str
    postcode: str
    country: str = "CN"


def _cn_person(rng: random.Random, province: str | None = None, phone: str | None = None, name: str | None = None) -> Person:
    if province is None:
        names = list(PLACES)
        province = rng.choices(names, weights=[PLACES[p][0] for p in names])[0]
    city, postcode, districts = rng.choice(PLACES[province][1])
    address = (f"{rng.choice(STREETS)}{rng.randint(1, 999)}号{rng.choice(COMPOUNDS)}"
               f"{rng.randint(1, 30)}栋{rng.randint(1, 4)}单元{rng.randint(1, 33)}{rng.randint(1, 4):02d}室")
    return Person(
        name=name or rng.choice(SURNAMES) + rng.choice(GIVEN),
        phone=phone or rng.choice(MOBILE_PREFIXES) + _digits(rng, 8),
        province=province, city=city, district=rng.choice(districts), address=address, postcode=postcode,
    )


def _us_person(rng: random.Random) -> Person:
    state, city, zipcode, area = rng.choice(US_PLACES)
    apt = f", Apt {rng.randint(1, 20)}{rng.choice('ABCD')}" if rng.random() < 0.4 else ""
    return Person(
        name=f"{rng.choice(US_FIRST)} {rng.choice(US_LAST)}",
        phone=f"+1 {area}-{rng.randint(201, 989)}-{_digits(rng, 4)}",
        province=state, city=city, district="", address=f"{rng.randint(10, 9899)} {rng.choice(US_STREETS)}{apt}",
        postcode=zipcode, country="US",
    )


# --- planning (pure: no database writes) -----------------------------------------------------
class Planner:
    """Turns a random seed into a list of order plans; executing them is separate."""

    def __init__(self, *, rng: random.Random, mappings: dict[str, dict[str, str]], count: int):
        self.rng = rng
        self.mappings = mappings  # shop code → SKU code → platform SKU id
        self.count = count
        self.shops = {code: platform for code, platform, *_ in SHOPS}
        self.cn_customers = [_cn_person(rng) for _ in range(max(20, count * 2 // 3))]
        self.us_customers = [_us_person(rng) for _ in range(max(6, count // 10))]
        self.featured = _cn_person(rng, province="江苏省", phone=DEMO_PHONE, name="周小雨")
        self.order_ids: set[str] = set()
        self.featured_orders = 0

    def plans(self) -> list[Plan]:
        names = list(SCENARIOS)
        chosen = names[: self.count]  # every scenario at least once, then by weight
        chosen += self.rng.choices(names, weights=[SCENARIOS[n][0] for n in names], k=max(0, self.count - len(names)))
        self.rng.shuffle(chosen)
        return [self.plan(i, scenario) for i, scenario in enumerate(chosen)]

    def _shop_for(self, scenario: str) -> str:
        candidates = [
            (code, PLATFORM_WEIGHTS[platform]) for code, platform in self.shops.items()
            if scenario not in NOT_ON.get(platform, set())
            and not (scenario in CN_ONLY and platform in US_PLATFORMS)
            and not (scenario in US_ONLY and platform not in US_PLATFORMS)
        ]
        return self.rng.choices([c for c, _ in candidates], weights=[w for _, w in candidates])[0]

    def _featured_shop(self, scenario: str) -> str:
        """The H5 demo customer shops on every Chinese channel in turn."""
        rotation = ["demo-taobao", "demo-jd", "demo-douyin", "demo-miniapp", "demo-pdd"]
        for _ in rotation:
            code = rotation[self.featured_orders % len(rotation)]
            self.featured_orders += 1
            if scenario not in NOT_ON.get(self.shops[code], set()):
                return code
        return self._shop_for(scenario)  # pragma: no cover - every scenario is allowed somewhere

    def plan(self, index: int, scenario: str) -> Plan:
        rng = self.rng
        featured = (index in (3, 13, 23) or index % 40 == 3) and scenario not in US_ONLY
        shop_code = self._featured_shop(scenario) if featured else self._shop_for(scenario)
        platform = self.shops[shop_code]
        us = platform in US_PLATFORMS
        if us:
            person = rng.choice(self.us_customers)
        elif featured:
            person = self.featured
        elif scenario == "partially_shipped":
            person = _cn_person(rng, province=rng.choice(JZH))
        else:
            person = rng.choice(self.cn_customers)
        lines = self._lines(shop_code, scenario, us)
        steps, paid_after, max_age = self._steps(scenario, us)
        is_presale = scenario == "paid_presale" or (
            not us and scenario in {"completed", "delivered"} and rng.random() < 0.05)
        data = self._order_data(platform, scenario, person, lines, is_presale, us)
        return Plan(scenario=scenario, shop_code=shop_code, data=data, paid_after=paid_after, steps=steps, max_age=max_age)

    def _lines(self, shop_code: str, scenario: str, us: bool) -> list[tuple[SkuSpec, int, bool]]:
        rng = self.rng
        sellable = [s for s in SKUS if s.code in self.mappings[shop_code] and s.code != OUT_OF_STOCK]
        if scenario == "partially_shipped":
            # One folding basin (→ 深圳仓) and one other item (→ 苏州仓) to a 江浙沪 address: a split order.
            folding = rng.choice([s for s in sellable if s.category == FOLDING])
            other = rng.choice([s for s in sellable if ("suzhou", s.code) in STOCK])
            return [(folding, 1, False), (other, rng.choice([1, 1, 2]), False)]
        n = rng.choices([1, 2, 3], weights=[60, 28, 12])[0]
        picked = rng.sample(sellable, k=min(n, len(sellable)))
        lines = [(s, rng.choices([1, 2, 3, 4], weights=[70, 20, 7, 3])[0], False) for s in picked]
        if scenario == "hold_stock_short":
            lines.append((SKU_BY_CODE[OUT_OF_STOCK], rng.choice([1, 1, 2]), False))
        if not us and rng.random() < 0.12:
            lines.append((SKU_BY_CODE[GIFT], 1, True))
        return lines

    def _steps(self, scenario: str, us: bool) -> tuple[list[Step], timedelta | None, timedelta]:
        rng = self.rng
        paid = _minutes(rng, 0.5, 25)
        alloc = Step("allocate", _minutes(rng, 3, 90))
        pack = Step("pack", _hours(rng, 1.5, 10) if not us else _hours(rng, 4, 18))
        # A split order's parcels leave their warehouses within `gap` of each other.
        ship = Step("ship", _hours(rng, 1, 8), {"carrier": rng.choice(CARRIERS_US if us else CARRIERS_CN),
                                                "gap": _minutes(rng, 20, 240)})
        deliver = Step("deliver", _hours(rng, 20, 80) if not us else _hours(rng, 60, 140))
        complete = Step("complete", _hours(rng, 6, 96))
        day = timedelta(days=1)
        steps: list[Step]
        if scenario == "pending_payment":
            return [], None, _hours(rng, 0.3, 20)
        if scenario == "cancelled_unpaid":
            return [Step("cancel", _hours(rng, 1, 24), {"reason": "超时未付款,订单自动关闭"})], None, 14 * day
        if scenario in {"paid", "hold_sku_unmapped"}:
            return [], paid, _hours(rng, 0.5, 8)
        if scenario == "paid_presale":
            return [], paid, 10 * day
        if scenario == "hold_stock_short":
            return [alloc], paid, 3 * day
        if scenario in {"hold_manual", "hold_check"}:
            if scenario == "hold_manual":
                reason, note = HoldReason.MANUAL, rng.choice(MANUAL_HOLDS)
            else:
                reason, note = rng.choice(CHECK_HOLDS)
            hold = Step("hold", _minutes(rng, 10, 240), {"reason": reason, "note": note})
            # Held after allocation keeps the reservations; not for lead-time (US) stock, whose
            # reservations would be past their 24 h by now and the expiry job would take them.
            return ([alloc, hold] if not us and rng.random() < 0.6 else [hold]), paid, 3 * day
        if scenario == "hold_reservation_expired":
            # Lead-time stock (the overseas warehouse) reserved more than 24 h ago and never confirmed.
            return [alloc, Step("expire", _hours(rng, 25, 40))], paid, 3 * day
        if scenario == "allocated":
            return [alloc], paid, _hours(rng, 1, 18)
        if scenario == "packed":
            return [alloc, pack], paid, _hours(rng, 12, 30)
        if scenario == "cancelled_paid":
            return [Step("cancel", _minutes(rng, 5, 120), {"reason": rng.choice(CANCEL_REASONS)})], paid, 14 * day
        if scenario == "cancelled_allocated":
            return [alloc, Step("cancel", _hours(rng, 0.2, 6), {"reason": rng.choice(CANCEL_REASONS)})], paid, 14 * day
        if scenario == "partially_shipped":
            return [alloc, pack, Step("ship_part", ship.after, ship.params)], paid, 2 * day
        steps = [alloc]
        if rng.random() < 0.08:  # an address check on the way, then released
            steps += [Step("hold", _minutes(rng, 10, 90), {"reason": HoldReason.ADDRESS, "note": "收件地址不完整,已联系买家补充"}),
                      Step("release", _hours(rng, 0.5, 5), {"note": "买家已补充地址"})]
        steps += [pack, ship]
        if scenario == "shipped":
            return steps, paid, 4 * day
        steps.append(deliver)
        if scenario == "delivered":
            return steps, paid, 8 * day
        if scenario == "completed":
            return steps + [complete], paid, 14 * day
        if scenario == "returned":
            if rng.random() < 0.5:
                steps.append(complete)
            return steps + [Step("return", _hours(rng, 24, 96), {"reason": rng.choice(RETURN_REASONS),
                                                               "restock": rng.random() < 0.7})], paid, 14 * day
        raise ValueError(f"unknown scenario {scenario}")

    def _order_data(self, platform: str, scenario: str, person: Person, lines: list[tuple[SkuSpec, int, bool]],
                    is_presale: bool, us: bool) -> NormalizedOrder:
        rng = self.rng
        currency = "USD" if us else "CNY"
        shop_code = next(c for c, p in self.shops.items() if p == platform)
        normalized = []
        goods = line_discounts = D("0")
        for spec, qty, gift in lines:
            price = (spec.usd if us else spec.price) or spec.price
            line_discount = D("0")
            if gift:
                price = D("0")
            elif not us and rng.random() < 0.15:
                line_discount = (price * qty * D("0.10")).quantize(D("0.01"))  # 限时直降 10%
            goods += price * qty
            line_discounts += line_discount
            normalized.append(NormalizedLine(
                title=("【赠品】" if gift else "") + spec.name, quantity=qty, unit_price=price,
                platform_sku_id=self.mappings[shop_code][spec.code], discount_amount=line_discount, is_gift=gift,
            ))
        if scenario == "hold_sku_unmapped":
            # A listing created on the platform but not mapped to a SKU here yet.
            new_listing = _platform_sku_id(rng, platform, "NEW-001")
            if platform == Platform.MINIAPP:
                new_listing = "NEW-" + _digits(rng, 4)
            price = D("36.90") if not us else D("16.99")
            goods += price
            normalized.append(NormalizedLine(title="新款硅胶折叠沥水篮(未建档)", quantity=1, unit_price=price,
                                             platform_sku_id=new_listing))
        coupons: list[str] = []
        coupon_off = D("0")
        if not us and goods >= 199 and rng.random() < 0.5:
            coupons.append("店铺券:满199减20")
            coupon_off += 20
        elif not us and goods >= 99 and rng.random() < 0.4:
            coupons.append("店铺券:满99减10")
            coupon_off += 10
        if us and rng.random() < 0.2:
            coupons.append("WELCOME10")
            coupon_off += (goods * D("0.10")).quantize(D("0.01"))
        if platform == Platform.PDD and goods >= 30 and rng.random() < 0.5:
            coupons.append("平台券:百亿补贴立减5")
            coupon_off += 5
        discount = min(coupon_off + line_discounts, goods)
        if us:
            shipping = D("0") if goods >= 35 else D("5.99")
        elif platform in {Platform.TAOBAO, Platform.JD, Platform.MINIAPP} and goods - discount < 39:
            shipping = D("6.00")
        else:
            shipping = D("0")
        level, vip = rng.choice(MEMBER_LEVELS[platform]) if platform in MEMBER_LEVELS and rng.random() < 0.3 else ("", False)
        invoice_title = tax_number = ""
        if not us and rng.random() < 0.12:
            if rng.random() < 0.6:
                invoice_title, tax_number = rng.choice(COMPANIES), _tax_number(rng)
            else:
                invoice_title = "个人"
        receiver = person
        if not us and rng.random() < 0.08:  # sent to someone else
            receiver = _cn_person(rng, province=person.province)
        tags = []
        source_detail = rng.choice(SOURCE_DETAILS[platform]) if rng.random() < 0.35 else ""
        if "直播" in source_detail:
            tags.append("直播")
        if vip:
            tags.append("VIP")
        if is_presale:
            tags.append("预售")
        status_key = SCENARIOS[scenario][1]
        codes = PLATFORM_STATUS[platform]
        fallback = {"allocated": "paid", "delivered": "shipped"}.get(status_key, "")
        platform_status = codes.get(status_key) or codes.get(fallback, "")
        return NormalizedOrder(
            platform_order_id="",  # set when the placing time is known
            lines=normalized,
            platform_status=platform_status,
            paid=scenario not in UNPAID,
            currency=currency,
            goods_amount=goods, discount_amount=discount, shipping_fee=shipping,
            paid_amount=goods - discount + shipping,
            buyer_name=person.name, buyer_phone=person.phone,
            receiver_name=receiver.name, receiver_phone=receiver.phone,
            country=receiver.country, province=receiver.province, city=receiver.city, district=receiver.district,
            address=receiver.address, postcode=receiver.postcode,
            is_presale=is_presale, source_detail=source_detail, coupon_codes=coupons,
            member_level=level, is_vip=vip,
            buyer_note=rng.choice(BUYER_NOTES) if not us and rng.random() < 0.2 else "",
            seller_note=rng.choice(SELLER_NOTES) if not us and rng.random() < 0.08 else "",
            invoice_title=invoice_title, invoice_tax_number=tax_number, tags=tags,
            raw={"source": "seed_demo", "scenario": scenario},
        )

    def schedule(self, plan: Plan, now: datetime) -> tuple[datetime, list[tuple[Step, datetime]]]:
        """Place the plan on the clock: every event in the past, placed at most `max_age` ago."""
        rng = self.rng
        total = (plan.paid_after or timedelta()) + sum((s.after + s.params.get("gap", timedelta()) for s in plan.steps),
                                                       timedelta())
        room = max(timedelta(), plan.max_age - total)
        placed = now - total - room * rng.random()
        # Few people shop between 01:00 and 07:00 in China: move those orders to the evening before.
        if plan.data.country == "CN" and 1 <= placed.astimezone(ZoneInfo("Asia/Shanghai")).hour < 7 \
                and placed - timedelta(hours=7) > now - timedelta(days=14):
            placed -= timedelta(hours=7)
        t = placed + (plan.paid_after or timedelta())
        timed = []
        for step in plan.steps:
            t += step.after
            timed.append((step, t))
        return placed, timed

    def finish(self, plan: Plan, placed: datetime, last: datetime) -> NormalizedOrder:
        data = plan.data
        platform = self.shops[plan.shop_code]
        while True:
            pid = _platform_order_id(self.rng, platform, placed)
            if pid not in self.order_ids:
                self.order_ids.add(pid)
                break
        data.platform_order_id = pid
        data.placed_at = placed
        if plan.paid_after is not None:
            data.paid_at = placed + plan.paid_after
        if data.is_presale:
            data.promised_ship_at = placed + timedelta(days=self.rng.randint(7, 15))
        data.platform_updated_at = last
        return data


# --- executing a plan through the services ---------------------------------------------------
class Runner:
    def __init__(self, *, rng: random.Random):
        self.rng = rng
        self.warehouses = {w.code: w for w in Warehouse.objects.all()}

    def _warehouses_to_ship(self, order: Order) -> list[Warehouse]:
        ids = (Reservation.objects.filter(order_line__order=order, status=Reservation.Status.ACTIVE)
               .values_list("stock_level__warehouse_id", flat=True).order_by("stock_level__warehouse__priority"))
        seen: list[int] = []
        for wid in ids:
            if wid not in seen:
                seen.append(wid)
        by_id = {w.pk: w for w in self.warehouses.values()}
        return [by_id[wid] for wid in seen]

    def _ship(self, order: Order, at: datetime, carrier: str, gap: timedelta, *, only_first: bool = False) -> Order:
        warehouses = self._warehouses_to_ship(order)
        if only_first and len(warehouses) > 1:
            warehouses = warehouses[:1]
        for i, warehouse in enumerate(warehouses):
            when = at + gap * i / max(1, len(warehouses) - 1)  # the last parcel leaves `gap` after the first
            order = services.order_ship(order=order, actor=ACTOR, warehouse=warehouse, carrier=carrier,
                                        tracking_number=_tracking(self.rng, carrier), at=when)
        return order

    def run(self, shop: Shop, data: NormalizedOrder, placed: datetime, steps: list[tuple[Step, datetime]]) -> Order:
        order = services.order_create(shop=shop, data=data, actor=ACTOR, at=placed)
        S = OrderStatus
        for step, at in steps:
            p = step.params
            if step.action == "allocate":
                if order.status != S.PAID:
                    break
                order = services.order_allocate(order=order, actor=ACTOR, at=at)
                if order.status != S.ALLOCATED:
                    break  # held (e.g. stock short): the story ends here
            elif step.action == "hold":
                order = services.order_hold(order=order, actor=ACTOR, reason=p["reason"], note=p["note"], at=at)
            elif step.action == "release":
                order = services.order_release(order=order, actor=ACTOR, note=p["note"], at=at)
            elif step.action == "pack":
                order = services.order_pack(order=order, actor=ACTOR, at=at)
            elif step.action in {"ship", "ship_part"}:
                order = self._ship(order, at, p["carrier"], p["gap"], only_first=step.action == "ship_part")
            elif step.action == "deliver":
                order = services.order_deliver(order=order, actor=ACTOR, at=at)
            elif step.action == "complete":
                order = services.order_complete(order=order, actor=ACTOR, at=at)
            elif step.action == "cancel":
                order = services.order_cancel(order=order, actor=ACTOR, reason=p["reason"], at=at)
            elif step.action == "expire":
                order = services.order_expire_reservations(order=order, actor=ACTOR, at=at)
            elif step.action == "return":
                order = services.order_mark_returned(order=order, actor=ACTOR, reason=p["reason"], at=at)
                if p["restock"]:
                    self._restock(order)
            else:  # pragma: no cover - a typo in a plan
                raise ValueError(step.action)
        return order

    def _restock(self, order: Order) -> None:
        """Returned goods judged sellable go into the return centre (a ledger receipt)."""
        returns = self.warehouses["yiwu-returns"]
        for line in order.lines.filter(sku__isnull=False, is_gift=False):
            inventory.stock_receive(warehouse=returns, sku=line.sku, quantity=line.quantity, actor=ACTOR,
                                    reason=f"退货入库 订单 {order.number}", kind=StockMove.Kind.RETURN_RESTOCK)


# --- the seed ---------------------------------------------------------------------------------
@contextmanager
def _quiet_notifications():
    """Hundreds of seeded orders are not news: keep the notification log quiet meanwhile."""
    logger = logging.getLogger("orderhub.notify")
    previous = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(previous)


def is_seeded() -> bool:
    return Shop.objects.filter(code__in=SHOP_CODES).exists()


def reset_logins(*, password: str, webhook_secret: str) -> None:
    """Staff users in their role groups with the given password; demo shops with the given secret."""
    roles.sync_roles()
    User = get_user_model()
    for username, role, last_name, first_name in USERS:
        user, _created = User.objects.get_or_create(username=username)
        user.first_name, user.last_name = first_name, last_name
        user.email = user.email or f"{username}@orderhub.example"
        user.is_active = user.is_staff = True
        user.is_superuser = role is None
        user.set_password(password)
        user.save()
        if role is not None:
            user.groups.add(Group.objects.get(name=roles.group_name(role)))
    Shop.objects.filter(code__in=SHOP_CODES).update(webhook_secret=webhook_secret)


def _catalogue(rng: random.Random, webhook_secret: str) -> dict[str, dict[str, str]]:
    for code, platform, name, currency, tz, hours in SHOPS:
        Shop.objects.get_or_create(code=code, defaults=dict(
            platform=platform, name=name, currency=currency, time_zone=tz, ship_within_hours=hours,
            webhook_secret=webhook_secret, sync_enabled=False))
    for code, name, kind, country, province, city, region, priority, lead, allocatable, address in WAREHOUSES:
        Warehouse.objects.get_or_create(code=code, defaults=dict(
            name=name, kind=kind, country=country, province=province, city=city, region=region, priority=priority,
            lead_time_days=lead, allocatable=allocatable, address=address))
    for spec in SKUS:
        Sku.objects.get_or_create(code=spec.code, defaults=dict(
            name=spec.name, category=spec.category, barcode=_ean13(rng), safety_stock=spec.safety,
            emergency_buffer=spec.safety // 2, tax_exempt=spec.tax_exempt))
    skus = {s.code: s for s in Sku.objects.filter(code__in=SKU_BY_CODE)}
    mappings: dict[str, dict[str, str]] = {}
    for shop in Shop.objects.filter(code__in=SHOP_CODES).order_by("code"):
        us = shop.platform in US_PLATFORMS
        wanted = [s for s in SKUS if (s.usd is not None) or not us]
        existing = dict(SkuMapping.objects.filter(shop=shop).values_list("sku__code", "platform_sku_id"))
        for spec in wanted:
            if spec.code not in existing:
                pid = _platform_sku_id(rng, shop.platform, spec.code)
                SkuMapping.objects.create(shop=shop, platform_sku_id=pid, sku=skus[spec.code])
                existing[spec.code] = pid
        mappings[shop.code] = existing
    warehouses = {w.code: w for w in Warehouse.objects.all()}
    for position, name, wh, conditions, note in RULES:
        # The seller's "折叠盆 anywhere → 深圳仓" is strict: short stock there holds the order.
        mode = RoutingRule.Mode.STRICT if conditions == RULES[1][3] else RoutingRule.Mode.PREFERRED
        RoutingRule.objects.get_or_create(name=name, defaults=dict(
            position=position, conditions=conditions, warehouse=warehouses[wh], note=note, mode=mode))
    return mappings


def _stock(scale: int) -> None:
    warehouses = {w.code: w for w in Warehouse.objects.all()}
    skus = {s.code: s for s in Sku.objects.filter(code__in=SKU_BY_CODE)}
    for (wh, code), quantity in STOCK.items():
        inventory.stock_receive(warehouse=warehouses[wh], sku=skus[code], quantity=quantity * scale, actor=ACTOR,
                                reason=RECEIPT_REASON)
    today = timezone.localdate()
    for wh, code, quantity, days in INBOUND:
        # Inbound is shown, never sold: it is not part of on-hand, so no ledger move.
        pool, _created = StockLevel.objects.get_or_create(warehouse=warehouses[wh], sku=skus[code])
        StockLevel.objects.filter(pk=pool.pk).update(inbound=quantity * scale, inbound_eta=today + timedelta(days=days))


def seed(*, password: str = DEFAULT_PASSWORD, webhook_secret: str = DEFAULT_WEBHOOK_SECRET,
         orders: int = DEFAULT_ORDERS, seed: int = DEFAULT_SEED, now: datetime | None = None,
         progress: Callable[[int, int], None] | None = None) -> SeedResult:
    """Seed the demo (first run) or reset its logins (any later run)."""
    with _quiet_notifications(), transaction.atomic():
        if is_seeded():
            reset_logins(password=password, webhook_secret=webhook_secret)
            return SeedResult(created=False, **summary())
        rng = random.Random(seed)
        now = (now or timezone.now()) - timedelta(minutes=5)
        mappings = _catalogue(rng, webhook_secret)
        reset_logins(password=password, webhook_secret=webhook_secret)
        _stock(scale=max(1, -(-orders // DEFAULT_ORDERS)))
        planner = Planner(rng=rng, mappings=mappings, count=orders)
        runner = Runner(rng=rng)
        shops = {s.code: s for s in Shop.objects.filter(code__in=SHOP_CODES)}
        scheduled = []
        for plan in planner.plans():
            placed, steps = planner.schedule(plan, now)
            last = steps[-1][1] if steps else (placed + (plan.paid_after or timedelta()))
            scheduled.append((placed, plan, planner.finish(plan, placed, last), steps))
        scheduled.sort(key=lambda item: item[0])  # in the order they happened: stock is taken first come
        for i, (placed, plan, data, steps) in enumerate(scheduled, start=1):
            runner.run(shops[plan.shop_code], data, placed, steps)
            if progress:
                progress(i, len(scheduled))
        problems = audit()
        if problems:
            raise RuntimeError("inventory audit failed after seeding:\n" + "\n".join(problems[:20]))
        return SeedResult(created=True, **summary())


def summary() -> dict:
    orders = Order.objects.filter(shop__code__in=SHOP_CODES)
    by_status = Counter(orders.values_list("status", flat=True))
    by_reason = Counter(orders.filter(status=OrderStatus.ON_HOLD).values_list("hold_reason", flat=True))
    return {
        "orders": sum(by_status.values()),
        "by_status": {s.value: by_status.get(s.value, 0) for s in OrderStatus},
        "by_hold_reason": dict(sorted(by_reason.items())),
        "counts": {
            "shops": Shop.objects.filter(code__in=SHOP_CODES).count(),
            "warehouses": Warehouse.objects.filter(code__in=[w[0] for w in WAREHOUSES]).count(),
            "skus": Sku.objects.filter(code__in=SKU_BY_CODE).count(),
            "sku_mappings": SkuMapping.objects.filter(shop__code__in=SHOP_CODES).count(),
            "routing_rules": RoutingRule.objects.filter(name__in=[r[1] for r in RULES]).count(),
            "stock_pools": StockLevel.objects.count(),
            "stock_moves": StockMove.objects.count(),
            "customers": orders.exclude(customer=None).values("customer").distinct().count(),
        },
    }
