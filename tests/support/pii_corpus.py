"""A labelled corpus of Korean text with personal information, for tests/test_pii.py and bench/pii_bench.py.

Every number is made here, with its check digit computed by the published rule (not by sftdata's code),
and set into customer-service style sentences with particles glued on. Hard negatives sit beside them:
dates, times, order and invoice numbers, ISBNs, prices, product and model codes, version numbers,
registration-shaped numbers whose check digit is wrong, and card-shaped numbers that fail Luhn.
`corpus(n, seed)` returns Samples: the text and its (type, value) labels.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Sample:
    text: str
    labels: list[tuple[str, str]] = field(default_factory=list)  # (type, the exact substring)


def _rrn_digits(rng: random.Random, foreign: bool, valid: bool = True) -> str:
    year = rng.randint(1940, 2019)
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    if year >= 2000:
        gender = rng.choice("78" if foreign else "34")
    else:
        gender = rng.choice("56" if foreign else "12")
    body = f"{year % 100:02d}{month:02d}{day:02d}{gender}" + "".join(rng.choice("0123456789") for _ in range(5))
    weights = (2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5)
    s = sum(int(d) * w for d, w in zip(body, weights))
    check = (13 - s % 11) % 10 if foreign else (11 - s % 11) % 10
    if not valid:
        check = (check + rng.randint(1, 9)) % 10
    return body + str(check)


def rrn(rng: random.Random, foreign: bool = False, valid: bool = True) -> str:
    d = _rrn_digits(rng, foreign, valid)
    return rng.choice([f"{d[:6]}-{d[6:]}", f"{d[:6]}-{d[6:]}", f"{d[:6]} - {d[6:]}", d])


def rrn_2020(rng: random.Random) -> str:
    """The post-October-2020 form: birth date from then on, random digits after the gender digit."""
    year = rng.randint(2021, 2024)
    d = f"{year % 100:02d}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}{rng.choice('34')}"
    return d[:6] + "-" + d[6] + "".join(rng.choice("0123456789") for _ in range(6))


def phone(rng: random.Random) -> str:
    mid, end = f"{rng.randint(2000, 9999)}", f"{rng.randint(0, 9999):04d}"
    forms = [f"010-{mid}-{end}", f"010{mid}{end}", f"010.{mid}.{end}", f"010 {mid} {end}", f"+82 10-{mid}-{end}",
             f"+82-10-{mid}-{end}", f"02-{rng.randint(200, 999)}-{end}", f"(02) {mid}-{end}",
             f"031-{rng.randint(200, 999)}-{end}", f"051)123-{end}", f"070-{mid}-{end}", f"(010){mid}-{end}",
             f"010 - {mid} - {end}", f"010–{mid}–{end}"]
    return rng.choice(forms)


def email(rng: random.Random) -> str:
    user = rng.choice(["hong.gildong", "minsu_kim", "jy.park77", "support.team", "lee-sj"]) + str(rng.randint(1, 999))
    return f"{user}@{rng.choice(['naver.com', 'gmail.com', 'daum.net', 'kakao.com', 'company.co.kr'])}"


def brn(rng: random.Random, valid: bool = True) -> str:
    d = [rng.randint(0, 9) for _ in range(9)]
    s = sum(x * w for x, w in zip(d, (1, 3, 7, 1, 3, 7, 1, 3, 5))) + d[8] * 5 // 10
    check = (10 - s % 10) % 10
    if not valid:
        check = (check + rng.randint(1, 9)) % 10
    t = "".join(map(str, d)) + str(check)
    return f"{t[:3]}-{t[3:5]}-{t[5:]}"


def card(rng: random.Random, valid: bool = True) -> str:
    digits = [int(rng.choice("4599"))] + [rng.randint(0, 9) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):  # the check digit will sit at the right: double every other from here
        n = d * 2 if i % 2 == 0 else d
        total += n - 9 if n > 9 else n
    check = (10 - total % 10) % 10
    if not valid:
        check = (check + rng.randint(1, 9)) % 10
    t = "".join(map(str, digits)) + str(check)
    sep = rng.choice(["-", " ", ""])
    return sep.join(t[i:i + 4] for i in range(0, 16, 4))


def account(rng: random.Random) -> tuple[str, str]:
    def n(k: int) -> str:
        return "".join(rng.choice("0123456789") for _ in range(k))

    bank, number = rng.choice([("국민은행", f"{n(6)}-{n(2)}-{n(6)}"), ("신한은행", f"110-{n(3)}-{n(6)}"),
                               ("우리은행", f"1002-{n(3)}-{n(6)}"), ("하나은행", f"{n(3)}-{n(6)}-{n(5)}"),
                               ("농협", f"{n(3)}-{n(4)}-{n(4)}-{n(2)}"), ("카카오뱅크", f"3333-{n(2)}-{n(7)}"),
                               ("기업은행", f"{n(3)}-{n(6)}-{n(2)}-{n(3)}")])
    return bank, number


def passport(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return "M" + "".join(rng.choice("0123456789") for _ in range(8))
    return f"M{rng.randint(100, 999)}{rng.choice('ABCDEFGH')}{rng.randint(1000, 9999)}"


def licence(rng: random.Random) -> str:
    if rng.random() < 0.5:
        return f"{rng.randint(11, 28)}-{rng.randint(0, 99):02d}-{rng.randint(0, 999999):06d}-{rng.randint(0, 99):02d}"
    return f"{rng.choice(['서울', '경기', '부산'])} {rng.randint(0, 99):02d}-{rng.randint(0, 999999):06d}-{rng.randint(0, 99):02d}"


def address(rng: random.Random) -> str:
    return rng.choice([
        f"서울특별시 강남구 테헤란로 {rng.randint(1, 600)}",
        f"강남구 테헤란로 {rng.randint(1, 600)}",
        f"인천광역시 연수구 송도과학로{rng.randint(1, 99)}번길 {rng.randint(1, 99)}",
        f"경기도 성남시 분당구 판교역로 {rng.randint(1, 300)} {rng.randint(101, 120)}동 {rng.randint(101, 2505)}호",
        f"부산광역시 해운대구 센텀중앙로 {rng.randint(1, 99)}",
        f"서울시 마포구 월드컵북로{rng.randint(1, 9)}길 {rng.randint(1, 99)}",
        f"대전광역시 유성구 봉명동 {rng.randint(100, 999)}-{rng.randint(1, 30)}",
        f"경기 수원시 영통구 매탄동 {rng.randint(100, 999)}",
        f"제주특별자치도 제주시 첨단로 {rng.randint(100, 300)}",
    ])


def ip(rng: random.Random) -> str:
    return ".".join(str(rng.randint(1, 254)) for _ in range(4))


def positives(rng: random.Random) -> list[Sample]:
    p, e, b = phone(rng), email(rng), brn(rng)
    bank, acct = account(rng)
    out = [
        Sample(f"고객님 연락처는 {p}로 남겨 주셨습니다.", [("phone", p)]),
        Sample(f"메일은 {e}으로 보내드렸어요. 확인 부탁드립니다.", [("email", e)]),
        Sample(f"사업자등록번호 {b}로 세금계산서를 발행해 드릴게요.", [("brn", b)]),
        Sample(f"환불 계좌는 {bank} {acct}이고 예금주는 본인입니다.", [("account", acct)]),
        Sample(f"접속 기록을 보니 {ip(rng)}에서 로그인하셨네요.", []),
    ]
    out[-1].labels = [("ip", out[-1].text.split("보니 ")[1].split("에서")[0])]
    r, f, r2 = rrn(rng), rrn(rng, foreign=True), rrn_2020(rng)
    c, pp, lic, addr = card(rng), passport(rng), licence(rng), address(rng)
    out += [
        Sample(f"본인 확인을 위해 {r}을 말씀해 주셨고 확인되었습니다.", [("rrn", r)]),
        Sample(f"외국인 고객 번호는 {f}입니다.", [("frn", f)]),
        Sample(f"아이 번호는 {r2}예요.", [("rrn", r2)]),
        Sample(f"결제하신 카드 {c}는 정지 처리했습니다.", [("card", c)]),
        Sample(f"여권번호 {pp}로 예약이 확인됩니다.", [("passport", pp)]),
        Sample(f"운전면허번호 {lic}로 렌터카 본인 인증을 마쳤습니다.", [("driver_license", lic)]),
        Sample(f"배송지는 {addr}로 변경해 드렸습니다.", [("address", addr)]),
    ]
    return out


def negatives(rng: random.Random) -> list[Sample]:
    year = rng.randint(2015, 2025)
    texts = [
        f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}에 주문하셨고 {year}.{rng.randint(1, 12):02d}.{rng.randint(1, 28):02d} 도착 예정입니다.",
        f"오후 {rng.randint(1, 11)}시 {rng.randint(10, 59)}분에 기사님이 방문합니다.",
        f"주문번호 {year}{rng.randint(100000000, 999999999)}로 조회해 보세요.",
        f"송장번호 {rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}입니다.",
        f"ISBN 978-89-{rng.randint(10, 99)}-{rng.randint(10000, 99999)}-{rng.randint(0, 9)} 도서를 찾으시나요?",
        f"ISBN {rng.choice(['978', '979'])}{rng.randint(1000000000, 9999999999)}",
        f"가격은 {rng.randint(1, 999)},{rng.randint(100, 999)},000원이고 할부는 {rng.randint(2, 24)}개월까지 됩니다.",
        f"모델명 SM-G{rng.randint(900, 999)}N, 부품번호 0{rng.randint(10, 99)}-{rng.randint(100, 999)}-{rng.randint(10, 99)} 제품입니다.",
        f"접수번호 {_rrn_digits(rng, False, valid=False)}로 처리되었습니다.",
        f"문서번호 {brn(rng, valid=False)} 참고 바랍니다.",
        f"주문 코드 {card(rng, valid=False)} 확인 부탁드립니다.",
        f"앱 버전 {rng.randint(1, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 9)}.{rng.randint(0, 99)}로 업데이트해 주세요.",
        f"고객센터 1588-{rng.randint(1000, 9999)}은 평일 9시부터 운영합니다.",
        f"{rng.randint(1990, 2010)}-{rng.randint(2011, 2024)} 시즌 기록을 알려 주세요.",
        f"친구 집으로 {rng.randint(1, 9)}시에 갔다가 강남구 쪽으로 {rng.randint(2, 9)}분 걸어갔어요.",
        f"제{rng.randint(1, 30)}조 {rng.randint(1, 5)}항에 따라 {rng.randint(7, 30)}일 이내 환불됩니다.",
        f"쿠폰 코드는 KOR{rng.randint(10000, 99999)}이고 {rng.randint(10, 50)}% 할인됩니다.",
        f"좌석 {rng.choice('ABCDEF')}{rng.randint(1, 40)}, 편명 KE{rng.randint(100, 999)}입니다.",
    ]
    return [Sample(t) for t in texts]


def corpus(n: int = 50, seed: int = 0) -> list[Sample]:
    rng = random.Random(seed)
    out: list[Sample] = []
    for _ in range(n):
        out += positives(rng) + negatives(rng)
    return out


def score(samples: list[Sample], find) -> dict[str, dict[str, float]]:
    """Precision and recall per type: a label is found by a hit of its type that covers it; a hit is right
    when it covers a label of its type."""
    tp: dict[str, int] = {}
    fn: dict[str, int] = {}
    fp: dict[str, int] = {}
    for sample in samples:
        hits = [(h.type.value, h.start, h.end) for h in find(sample.text)]
        spans = []
        for kind, value in sample.labels:
            start = sample.text.index(value)
            spans.append((kind, start, start + len(value)))
        for kind, start, end in spans:
            ok = any(k == kind and s <= start and e >= end for k, s, e in hits)
            (tp if ok else fn)[kind] = (tp if ok else fn).get(kind, 0) + 1
        for kind, s, e in hits:
            if not any(k == kind and s <= start and e >= end for k, start, end in spans):
                fp[kind] = fp.get(kind, 0) + 1
    out = {}
    for kind in sorted(set(tp) | set(fn) | set(fp)):
        t, f_n, f_p = tp.get(kind, 0), fn.get(kind, 0), fp.get(kind, 0)
        out[kind] = {"precision": t / (t + f_p) if t + f_p else 1.0, "recall": t / (t + f_n) if t + f_n else 1.0,
                     "labels": t + f_n, "hits": t + f_p}
    t, f_p = sum(tp.values()), sum(fp.values())
    out["overall"] = {"precision": t / (t + f_p) if t + f_p else 1.0,
                      "recall": t / (t + sum(fn.values())) if t + sum(fn.values()) else 1.0,
                      "labels": t + sum(fn.values()), "hits": t + f_p}
    return out
