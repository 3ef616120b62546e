"""Chinese cues for the contradiction detectors (data only; see :mod:`.lexicon` for the fields).

Negative forms come before positive ones wherever both are tried (不需要 before 需要, 不是 before
是), because the positive form is inside the negative one.
"""

from __future__ import annotations

import re

from ragguard.core.detectors.lexicon import (
    DateRule,
    EntityCues,
    Lexicon,
    MarkedName,
    PredicateCues,
    QuantityCues,
    StanceCues,
    TextCues,
    TimeRule,
    ValueRule,
)

__all__ = ["ZH", "chinese_number"]

_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_UNITS = {"十": 10, "百": 100, "千": 1000, "万": 10000}


def chinese_number(text: str) -> int | None:
    """Convert a Chinese numeral (三, 十二, 二十五, 一百零五, 两千) to an int."""
    if not text or any(ch not in _DIGITS and ch not in _UNITS for ch in text):
        return None
    total, section, digit = 0, 0, None
    for ch in text:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        else:
            unit = _UNITS[ch]
            if unit == 10000:
                total += (section + (digit or 0)) * unit
                section = 0
            else:
                section += (1 if digit is None else digit) * unit
            digit = None
    value = total + section + (digit or 0)
    return value if value or any(ch in text for ch in "零〇") else None  # a bare 万 is no number


def _number(token: str) -> float | None:
    value = chinese_number(token)
    return float(value) if value is not None else None


_PREDICATES = {
    "charge": ("收费|收取|自付|自费|自行承担|需付费", "免费|不收费|不收取|免收|无需付费|无须付费|无需自付|无须自付|不用付"),
    "allow": ("可以|允许|支持", "不可以|不允许|禁止|严禁|不得|不支持|不再支持"),
    "require": ("必须|需要|要求", "不需要|无需|无须|不必|不用|不要求|免于"),
    "entitle": ("享受|享有|有资格|领取|发放", "不享受|不享有|没有资格|无资格|无权|不能领取|不发放|不予发放"),
    "cover": ("报销|包括|包含|赔付|退款", "不予报销|不能报销|不报销|不包括|不包含|不赔付|不予赔付|不退款|不予退款"),
}

_UNIT_WORDS = {
    "天": "day", "日": "day", "个工作日": "day", "工作日": "day", "周": "week", "个星期": "week", "星期": "week",
    "个月": "month", "月": "month", "年": "year", "小时": "hour", "个小时": "hour", "个钟头": "hour",
    "分钟": "minute", "分钱": "cent", "本": "book", "册": "book", "次": "times",
    "元": "money", "块": "money", "公斤": "kg", "千克": "kg", "克": "g", "斤": "jin", "公里": "km", "千米": "km",
}

# Role words by the kind of role they name (the kinds are shared with the other languages).
_ROLES = {
    "主管": "manager", "经理": "manager", "主任": "manager", "组长": "manager", "负责人": "manager",
    "总监": "director", "专员": "officer", "护士": "nurse", "医生": "physician", "管理员": "administrator",
    "委员会": "committee", "前台": "receptionist", "秘书": "secretary", "工程师": "engineer",
    "总裁": "ceo", "副总裁": "ceo", "总经理": "ceo", "副总经理": "ceo", "房东": "landlord", "客服": "agent",
}

ZH = Lexicon(
    name="zh",
    text=TextCues(
        sentence_ends="。！？", question_marks="？", commas="，", semicolons="；", colons="：",
        script=re.compile(r"[\u4e00-\u9fff]"),
        topic_chars=re.compile(r"[\u4e00-\u9fff]"),
        clause_words="但",
        # 如 opens a condition (如有疑问), but not in 如何 / 如此 / 如下 / 如今 / 如同.
        condition_openers="如果|若|假如|要是|除非|只要|如(?![何此下今同])",
        caveat_words="但是|但|不过|然而|只是",
    ),
    stance=StanceCues(
        # 吗 at the end (not 什么 / 怎么 / 为什么 ...), or 是否 / 能否 / an A-not-A verb (能不能, 需不需要, 有没有) anywhere.
        yes_no_question=re.compile(
            r"(吗|(?<![什怎为那这多])么)\s*[？?]?\s*$|是否|能否|可否|(?P<verb>[\u4e00-\u9fff])[不没](?P=verb)"),
        yes_lead=re.compile(r"^\s*(是的|是|对的|对|需要|要|可以|能|必须|有的|有|应该)"),
        no_lead=re.compile(r"^\s*(不是|不对|不需要|不用|无需|不必|不能|不可以|不行|不允许|没有|否|不)"),
        yes_explicit=re.compile(r"^\s*(是的|对的)"),
        no_explicit=re.compile(r"^\s*(不是的|不是|不对)"),
        # An opening verb echoes the question's verb: 可以…吗 is answered 可以/不可以, not 不需要
        # (which answers another question). Generic markers answer any question.
        generic_leads=frozenset({"是的", "是", "不是", "对", "对的", "不对", "否", "不", "不行"}),
        lead_families=(
            (frozenset({"需要", "不需要", "不用", "无需", "不必", "要", "必须"}), ("需要", "要", "需", "必须", "用")),
            (frozenset({"可以", "不可以", "能", "不能", "不允许"}), ("可以", "能", "可否", "允许", "可不可以")),
            (frozenset({"有", "有的", "没有"}), ("有",)),
            (frozenset({"应该"}), ("应该", "应")),
        ),
        negation=re.compile(r"(不是|不需要|不用|无需|无须|不必|不能|不可以|不可|不得|不允许|禁止|严禁|无法|没有|没|未|(?<!避)免|不)"),
        cost_question=re.compile(r"收费|付费|费用|多少钱"),
        free_question=re.compile(r"免费"),
        no_cost="免费|不收费|无需付费|无须付费|不另收费",
        paid="需要付费|需付费|收费|要交|需缴纳|自费",
        modal="必须|需要|须|可以|能够|允许",
    ),
    predicates=PredicateCues(
        predicates=_PREDICATES,
        restricted=re.compile(r"仅|只有|只能|只要|除|否则"),
        leading_condition=re.compile(r"^(?:如果|若|假如|要是|一旦)"),
    ),
    quantities=QuantityCues(
        units=_UNIT_WORDS,
        number=r"[零〇一二两三四五六七八九十百千万]+",
        parse_number=_number,
        digit_multipliers={"万": 10000.0, "千": 1000.0},
        ordinal_prefixes="第",
        # 3月 / 三月 is March and 5日 a day of the month; 三个月 is a duration.
        date_units=frozenset({"月", "日"}),
        year_units=frozenset({"年"}),  # 2025年 is a year, 5年 a duration
        relative_one=("一", frozenset({"前", "后", "当", "同"})),  # 前一天 is the day before
        dates=(DateRule(re.compile(
            r"(?<![个\d零〇一二两三四五六七八九十])(?P<month>\d{1,2}|十[一二]?|[一二三四五六七八九])\s*月(?!份?[内以])"
            r"(?:份)?(?:\s*(?P<day>\d{1,2}|[一二三四五六七八九十]{1,3})\s*[日号])?"
        )),),
        times=(TimeRule(
            re.compile(r"(?P<marker>早上|早晨|上午|凌晨|中午|下午|傍晚|晚上|夜间|夜里)?\s*"
                       r"(?P<hour>\d{1,2}|[一二两三四五六七八九十]{1,3})\s*[点點]"
                       r"(?:(?P<half>半)|(?P<minute>\d{1,2}|[一二三四五六七八九十]{1,3})分?)?"),
            pm=frozenset({"中午", "下午", "傍晚", "晚上", "夜间", "夜里"}),
            am=frozenset({"早上", "早晨", "上午", "凌晨"}),
        ),),
        values=(
            ValueRule("percent", re.compile(r"百分之(?P<value>[零〇一二两三四五六七八九十百]+|\d+(?:\.\d+)?)")),
            # Day of the month: 15日 / 10号 / 十五号, but not the 日 of a full date such as 3月5日.
            ValueRule("day_of_month", re.compile(
                r"(?<!\d月)(?<![一二三四五六七八九十]月)(?<![\d一二三四五六七八九十])(?P<value>\d{1,2}|[一二三四五六七八九十]{1,3})"
                r"\s*(日|号)"), low=1, high=31),
        ),
    ),
    entities=EntityCues(
        name_question=re.compile(r"(哪|谁|什么|何处)"),
        who_question=re.compile(r"谁"),
        marked_names=(
            MarkedName(re.compile(r"《([^》]+)》")),
            MarkedName(
                re.compile(
                    r"(?:统一在|需要到|需要|填写|使用|通过|在|到|由|向|于|为|去|是|找|经|需|请)"
                    r"([\u4e00-\u9fffA-Z0-9]{1,10}(?:银行|支行|分行|网点|部门|部|中心|服务台|公司|处|科|室|局|窗口|机场|医院|组|表|单"
                    r"|经理|主管|专员))"
                ),
                # A verb caught between the marker and the name: 请联系人力资源部 names 人力资源部.
                drop=re.compile(r"^(?:通过|公司的|公司|填写|使用|提交给|提交|办理|联系|咨询|前往|致电|询问|交给|告知)"),
            ),
            # Systems and apps: 在钉钉上提交, 通过公司的飞书审批, 用企业微信打卡
            MarkedName(re.compile(r"(?:在|通过|用(?!来|于)|使用|登录)(?:公司的|公司)?([\u4e00-\u9fffA-Za-z]{2,5}?)"
                                  r"的?(?:上|审批|App|APP|app|小程序|提交|打卡)")),
            MarkedName(re.compile(r"(?:设在|位于|在)([\u4e00-\u9fff]{2,3})(?=[。，！；]|$)")),
            # Cities are named without a marker after them ("定在杭州举办"): the largest cities by name.
            MarkedName(re.compile(
                "(北京|上海|天津|重庆|广州|深圳|杭州|苏州|南京|无锡|宁波|温州|成都|武汉|西安|长沙|郑州|济南|青岛|大连|沈阳|"
                "长春|哈尔滨|石家庄|太原|合肥|福州|厦门|南昌|南宁|昆明|贵阳|兰州|西宁|银川|乌鲁木齐|拉萨|呼和浩特|海口|三亚|"
                "珠海|东莞|佛山|香港|澳门|台北)"
            )),
        ),
        marked_lstrip="在到由向于为去请需要",
        generic_names=frozenset({"公司", "本公司", "系统", "平台", "网上", "线上", "手机", "电脑", "部门", "内部", "表单", "表格"}),
        roles=_ROLES,
        role_pattern=r"([A-Z]{2,}|[\u4e00-\u9fff]{0,2}?)({roles})",
    ),
)
