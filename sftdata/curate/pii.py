"""Personal information in Korean (and general) text: where it is, of what type, how sure.

`find(text)` returns the hits of one string, longest first where two overlap. Patterns anchor on
"not a letter or digit of the Latin alphabet" rather than word boundaries, so a number with a Korean
particle glued to it (`010-1234-5678로`, `900101-1234567이고`) is found, and a number inside a longer
run of digits or dashes is not. Numbers with a check digit or a date part are validated:

- resident registration numbers (주민등록번호, 7th digit 1-4) and foreign registration numbers
  (외국인등록번호, 5-8): the first six digits must be a real date in the century the 7th digit gives.
  Numbers issued before October 2020 end in a check digit (weights 2..9,2..5; (11 - s mod 11) mod 10,
  and (13 - s mod 11) mod 10 for foreigners). From October 2020 the last six digits are random, so a
  number whose date is from then on is accepted as it is, and so is any date-valid number that a label
  right before it calls a registration number (`주민번호는 …`): re-issued numbers of older people are
  random too. A date-valid number with a wrong check digit and no such label is not reported.
- business registration numbers (사업자등록번호, 3-2-5 digits) and card numbers (Luhn, 15-16 digits
  with an issuer prefix) must pass their check digit.
- bank accounts have no check digit any bank publishes; a number in one of the layouts Korean banks
  use is a hit of confidence ``high`` when a bank or account word stands just before it, else ``low``;
  10-14 digits without dashes count only right after such a word. Landline numbers without
  separators likewise count only after a word such as 전화/연락처/번호.
  Passport numbers (M12345678, M123A4567) likewise need 여권/passport before them for ``high``.
- addresses: 도로명 (…로/…길 + building number) and 지번 (…동/…리/…가 + lot number) after a province or
  city name, down to the building (and 동/호 where given); dates, clock times and counters are not.

Person names are not guessed from text: `names` passes the values a label says are names.
"""
from __future__ import annotations

import calendar
import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

Confidence = Literal["high", "low"]


class PiiType(str, Enum):
    rrn = "rrn"  # 주민등록번호
    frn = "frn"  # 외국인등록번호
    phone = "phone"
    email = "email"
    brn = "brn"  # 사업자등록번호
    card = "card"
    account = "account"
    passport = "passport"
    driver_license = "driver_license"
    address = "address"
    ip = "ip"
    name = "name"


PLACEHOLDERS: dict[PiiType, str] = {
    PiiType.rrn: "[주민등록번호]", PiiType.frn: "[외국인등록번호]", PiiType.phone: "[전화번호]",
    PiiType.email: "[이메일]", PiiType.brn: "[사업자등록번호]", PiiType.card: "[카드번호]",
    PiiType.account: "[계좌번호]", PiiType.passport: "[여권번호]", PiiType.driver_license: "[운전면허번호]",
    PiiType.address: "[주소]", PiiType.ip: "[IP주소]", PiiType.name: "[이름]",
}
CHECK_DIGIT_TYPES = (PiiType.rrn, PiiType.frn, PiiType.brn, PiiType.card)


@dataclass(frozen=True, slots=True)
class Hit:
    type: PiiType
    start: int
    end: int
    confidence: Confidence = "high"


L = r"(?<![0-9A-Za-z])(?<!\d[-.])"  # not inside a longer number, word or dashed code
R = r"(?![0-9A-Za-z])(?![-.]\d)"
_SEP = r"\s?[-.\u2013\u2014]?\s?"
_BEFORE = 24  # characters before a number searched for its label


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_REGISTRATION = _rx(L + r"(\d{6})\s?[-–]?\s?([1-8])(\d{6}|\*{6})" + R)
_REGISTRATION_LABEL = _rx(r"(주민|외국인|등록\s*번호|RRN|rrn|주민번호|주번)")
_PHONE = _rx("|".join((
    L + r"\(?01[016789]\)?" + _SEP + r"\d{3,4}" + _SEP + r"\d{4}" + R,
    r"(?<![0-9A-Za-z])(?:\+82[-.\s]?|(?<![0-9+])82[-.\s])\(?0?\)?1[016789]" + _SEP + r"\d{3,4}" + _SEP + r"\d{4}" + R,
    r"(?<![0-9A-Za-z])\+82[-.\s]?\(?0?\)?(?:2|[3-6][1-5]|70)[-.\s)]\s?\d{3,4}[-.\s]\d{4}" + R,
    r"(?<![0-9A-Za-z])\(0(?:2|[3-6][1-5]|70|50[2-8])\)\s?\d{3,4}[-.\s]?\d{4}" + R,
    L + r"0(?:2|[3-6][1-5]|70|50[2-8])\s?[-.\s)\u2013]\s?\d{3,4}\s?[-.\s\u2013]\s?\d{4}" + R,
)))
_PHONE_BARE = _rx(L + r"0(?:2|[3-6][1-5]|70)\d{7,8}" + R)  # a landline without separators: only after a label
_PHONE_LABEL = _rx(r"(전화|연락|직통|번호|문의|팩스|tel|Tel|TEL|☎|call|Call)")
# The local part is ASCII, or Hangul (an internationalised address, 홍길동@한국.kr) that starts after a non-letter
# and holds no Latin letter, so Korean glued to an ASCII address (메일kim@…) is not taken into it.
_EMAIL = _rx(r"(?:(?<![A-Za-z0-9._%+-])[A-Za-z0-9][A-Za-z0-9._%+-]*|(?<![A-Za-z0-9가-힣._%+-])[가-힣][가-힣0-9._%+-]*)"
             r"@[A-Za-z0-9가-힣-]+(?:\.[A-Za-z0-9가-힣-]+)*\.(?:[A-Za-z]{2,}|한국)")
_FULLWIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}  # ０-９, Ａ-Ｚ, －, ＠ …: one for one
_BRN = _rx(L + r"(\d{3})-(\d{2})-(\d{5})" + R)
_BRN_BARE = _rx(L + r"(\d{10})" + R)
_BRN_LABEL = _rx(r"사업자")
_CARD = _rx(L + r"(?:\d{4}([-\s]?)\d{4}\1\d{4}\1\d{4}|\d{4}([-\s]?)\d{6}\2\d{5})" + R)
_ACCOUNT = _rx(L + r"(?:\d{6}-\d{2}-\d{6}|\d{3}-\d{6}-\d{2}-\d{3}|\d{3}-\d{3}-\d{6}|\d{4}-\d{3}-\d{6}|"
               r"\d{3}-\d{6}-\d{5}|\d{3}-\d{4}-\d{4}-\d{2}|\d{4}-\d{2}-\d{7}|\d{4}-\d{4}-\d{4}|\d{3}-\d{2}-\d{6}|"
               r"\d{3}-\d{6}-\d{3}|\d{4}-\d{4}-\d{4}-\d)" + R)
_ACCOUNT_BARE = _rx(L + r"\d{10,14}" + R)  # an account written without dashes: only right after a bank word
_ACCOUNT_LABEL = _rx(r"(은행|계좌|입금|송금|이체|예금주|뱅크|농협|국민|신한|우리|하나|기업|카카오|토스|새마을|우체국|신협|수협|"
                     r"씨티|SC제일|IBK|KB|NH|카뱅|케뱅|금고|account|Account)")
_PASSPORT = _rx(L + r"(?:[MSRODG]\d{8}|[MSRODG]\d{3}[A-Z]\d{4})" + R)
_PASSPORT_LABEL = _rx(r"(여권|passport|Passport|PASSPORT)")
_REGIONS = "서울|부산|경기|강원|충북|충남|전북|전남|경북|경남|제주|대구|인천|광주|대전|울산"
_LICENSE = _rx(L + r"(?:(?:1[1-9]|2[0-8])-\d{2}-\d{6}-\d{2}|(?:" + _REGIONS + r")\s?\d{2}-\d{6}-\d{2})" + R)
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = _rx(r"(?<![0-9A-Za-z.])(?<![vV])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?![0-9A-Za-z]|\.\d)")
_IPV6 = _rx(r"(?<![0-9A-Za-z:])(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}(?![0-9A-Za-z:])|"
            r"(?<![0-9A-Za-z:])(?:[0-9a-fA-F]{1,4}:){2,6}:(?:[0-9a-fA-F]{1,4}:?){1,5}(?<!:)(?![0-9A-Za-z:])")
_VERSION_LABEL = _rx(r"(버전|펌웨어|version|Version|firmware|Firmware|ver\.?)\s*$")

_PROVINCE = (r"(?:서울특별시|서울시|서울|부산광역시|부산시|부산|대구광역시|대구시|대구|인천광역시|인천시|인천|광주광역시|광주시|"
             r"광주|대전광역시|대전시|대전|울산광역시|울산시|울산|세종특별자치시|세종시|세종|경기도|경기|강원특별자치도|강원도|강원|"
             r"충청북도|충북|충청남도|충남|전북특별자치도|전라북도|전북|전라남도|전남|경상북도|경북|경상남도|경남|제주특별자치도|"
             r"제주도|제주)")
_DISTRICT = r"(?:\s[가-힣]{1,6}(?:시|군|구))"
_ROAD = r"(?:\s?[가-힣0-9·]{1,12}(?<!으)(?:대로|로|길)(?:\s?\d{1,4}(?:번길|번가길|가길|길))?)"
_LOT = r"(?:\s[가-힣0-9]{1,8}(?:동|리|가)(?:\s?\d{1,3}가)?)"
_NUMBER = r"\s?(?:산\s?)?\d{1,5}(?:-\d{1,5})?(?:번지)?"
_COUNTER = r"(?!\d|\s?(?:시|분|초|개|명|번째|층|월|일|년|원|살|세|시간|km|m|%|차|회|호선|등|위|쪽|페이지|권|장|대|마리|번\b))"
_UNIT = r"(?:,?\s?[가-힣A-Za-z0-9]{0,12}\s?\d{1,4}동\s?\d{1,5}호|,?\s?\d{1,5}호)?"
_ADDRESS = _rx(r"(?<![가-힣])" + _PROVINCE + _DISTRICT + r"{0,2}(?:" + _ROAD + r"|" + _LOT + r")" + _NUMBER
               + _COUNTER + _UNIT)
_ADDRESS_SHORT = _rx(r"(?<![가-힣])(?:[가-힣]{1,4}시\s)?[가-힣]{1,5}(?:시|구|군)" + r"(?:" + _ROAD + r"|" + _LOT + r")\s" + r"\d{1,5}(?:-\d{1,5})?"
                     + _COUNTER + _UNIT)
_QUICK = re.compile(r"[0-9@]")


def _date_ok(yy: str, mm: str, dd: str, century: int) -> bool:
    year, month, day = century + int(yy), int(mm), int(dd)
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]


def _weighted(digits: str, weights: Iterable[int]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights))


def registration(text: str, match: re.Match[str]) -> Hit | None:
    """A resident (1-4) or foreign (5-8) registration number, validated as the module docstring says."""
    birth, gender, rest = match.group(1), match.group(2), match.group(3)
    g = int(gender)
    century = 1900 if g in (1, 2, 5, 6) else 2000
    if not _date_ok(birth[:2], birth[2:4], birth[4:], century):
        return None
    kind = PiiType.rrn if g <= 4 else PiiType.frn
    if rest.startswith("*") or (century == 2000 and birth >= "201001"):
        return Hit(kind, match.start(), match.end())  # partly masked, or the random post-2020 form
    digits = birth + gender + rest
    s = _weighted(digits[:12], (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5))
    check = (11 - s % 11) % 10 if kind is PiiType.rrn else (13 - s % 11) % 10
    if check == int(digits[12]) or _labelled(text, match.start(), _REGISTRATION_LABEL):
        return Hit(kind, match.start(), match.end())
    return None


def brn_ok(digits: str) -> bool:
    s = _weighted(digits[:9], (1, 3, 7, 1, 3, 7, 1, 3, 5)) + int(digits[8]) * 5 // 10
    return (10 - s % 10) % 10 == int(digits[9])


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, d in enumerate(reversed(digits)):
        n = int(d) * (2 if i % 2 else 1)
        total += n - 9 if n > 9 else n
    return total % 10 == 0


def _labelled(text: str, start: int, label: re.Pattern[str], before: int = _BEFORE) -> bool:
    return label.search(text, max(0, start - before), start) is not None


def _digits(value: str) -> str:
    return re.sub(r"\D", "", value)


def find(text: str, names: Iterable[str] = ()) -> list[Hit]:
    """Every PII hit in `text`, in order, none overlapping (where two would, the longer is kept). Full-width
    forms (０１０-１２３４…) are read as ASCII; offsets are those of `text`."""
    text = text.translate(_FULLWIDTH)
    hits: list[Hit] = [Hit(PiiType.name, m.start(), m.end()) for m in _name_matches(text, names)]
    if _QUICK.search(text) is None:
        return hits
    for m in _REGISTRATION.finditer(text):
        hit = registration(text, m)
        if hit:
            hits.append(hit)
    hits += [Hit(PiiType.phone, m.start(), m.end()) for m in _PHONE.finditer(text)]
    hits += [Hit(PiiType.phone, m.start(), m.end()) for m in _PHONE_BARE.finditer(text)
             if _labelled(text, m.start(), _PHONE_LABEL)]
    if "@" in text:
        hits += [Hit(PiiType.email, m.start(), m.end()) for m in _EMAIL.finditer(text)]
    hits += [Hit(PiiType.brn, m.start(), m.end()) for m in _BRN.finditer(text) if brn_ok(_digits(m.group()))]
    hits += [Hit(PiiType.brn, m.start(), m.end()) for m in _BRN_BARE.finditer(text)
             if brn_ok(m.group()) and _labelled(text, m.start(), _BRN_LABEL)]
    hits += [Hit(PiiType.card, m.start(), m.end()) for m in _CARD.finditer(text) if _card_ok(_digits(m.group()))]
    hits += [Hit(PiiType.account, m.start(), m.end(), _confidence(text, m.start(), _ACCOUNT_LABEL))
             for m in _ACCOUNT.finditer(text)]
    hits += [Hit(PiiType.account, m.start(), m.end()) for m in _ACCOUNT_BARE.finditer(text)
             if _labelled(text, m.start(), _ACCOUNT_LABEL, 16)]
    hits += [Hit(PiiType.passport, m.start(), m.end(), _confidence(text, m.start(), _PASSPORT_LABEL))
             for m in _PASSPORT.finditer(text)]
    hits += [Hit(PiiType.driver_license, m.start(), m.end()) for m in _LICENSE.finditer(text)]
    hits += [Hit(PiiType.ip, m.start(), m.end()) for m in _IPV4.finditer(text)
             if not _VERSION_LABEL.search(text, max(0, m.start() - 12), m.start())]
    hits += [Hit(PiiType.ip, m.start(), m.end()) for m in _IPV6.finditer(text)]
    hits += [Hit(PiiType.address, m.start(), _rstrip(text, m.start(), m.end())) for m in _ADDRESS.finditer(text)]
    hits += [Hit(PiiType.address, m.start(), _rstrip(text, m.start(), m.end())) for m in _ADDRESS_SHORT.finditer(text)]
    return _resolve(hits)


def _card_ok(digits: str) -> bool:
    if digits[0] not in "345689" or (len(digits) == 13 and digits[:3] in ("978", "979")):
        return False
    return luhn_ok(digits)


def _confidence(text: str, start: int, label: re.Pattern[str]) -> Confidence:
    return "high" if _labelled(text, start, label) else "low"


def _rstrip(text: str, start: int, end: int) -> int:
    while end > start and text[end - 1] in " ,":
        end -= 1
    return end


# which of two overlapping hits of equal length wins
_PRIORITY = {t: i for i, t in enumerate((PiiType.rrn, PiiType.frn, PiiType.card, PiiType.brn, PiiType.driver_license,
                                         PiiType.phone, PiiType.email, PiiType.passport, PiiType.account, PiiType.ip,
                                         PiiType.address, PiiType.name))}


def _resolve(hits: list[Hit]) -> list[Hit]:
    ranked = sorted(hits, key=lambda h: (-(h.end - h.start), h.confidence != "high", _PRIORITY[h.type], h.start))
    kept: list[Hit] = []
    for hit in ranked:
        if all(hit.end <= k.start or hit.start >= k.end for k in kept):
            kept.append(hit)
    return sorted(kept, key=lambda h: h.start)


_ADDRESSED = r"(?=\s?(?:님|씨|고객님|선생님|입니다|이에요|예요|이고|이가|이는|이를|이랑)|아(?![가-힣])|야(?![가-힣]))"


def given_name(name: str) -> str | None:
    """The given name of a three-syllable Korean name (김민수 → 민수), which `find` also looks for."""
    return name[1:] if re.fullmatch(r"[가-힣]{3}", name) else None


def _name_matches(text: str, names: Iterable[str]) -> Iterable[re.Match[str]]:
    """Each labelled name where it stands in `text`; a Korean name of three syllables also as its given
    name followed by a form of address or a copula (민수님, 민수 씨, 민수입니다)."""
    patterns = []
    for name in {n.strip() for n in names if n and len(n.strip()) >= 2}:
        patterns.append(re.escape(name))
        given = given_name(name)
        if given:
            patterns.append(r"(?<![가-힣])" + re.escape(given) + _ADDRESSED)
    if not patterns:
        return []
    return re.finditer("|".join(sorted(patterns, key=len, reverse=True)), text)
