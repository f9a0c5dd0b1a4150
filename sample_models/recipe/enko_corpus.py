"""Synthetic English→Korean sentence pairs with gold word alignments.

A small synchronous grammar produces an English sentence and its Korean translation
together, so the translation is a deterministic function of the English side and every
Korean word knows which English words it came from.

What the grammar covers:

* SVO → SOV reordering, with Korean postpositions chosen by the final-consonant (batchim)
  rule: 이/가, 을/를, 은/는, 과/와, 으로/로 (nouns ending in ㄹ take 로);
* several English words folding into one Korean word ("in the kitchen" → 부엌에서,
  "to the school" → 학교에, "with a knife" → 칼로, "by bus" → 버스로);
* determiners, possessives (나의/너의/그의/그녀의/우리의/그들의) and adjectives;
* tense agreement with time words (yesterday → past, tomorrow → future, every day → present);
* negation (-지 않는다/않았다/않겠다), yes/no and wh-questions (-니), predicate adjectives;
* clauses joined by "and" (-고) or "because" (-기 때문에), and relative clauses
  ("the boy who reads a book" → 책을 읽는 소년이).

Tokens are separated by single spaces and the final punctuation is its own token on both
sides: ``the boy ate an apple .`` → ``소년이 사과를 먹었다 .``

Alignments use Pharaoh notation with 0-based indices, English index first: ``i-j`` is a
sure link and ``i?j`` a possible one. Every Korean word has exactly one sure link, to the
English word it translates; function words folded into it (articles, prepositions,
auxiliaries, relative pronouns) get possible links. Links are sorted by (j, i).

Command line::

    python sample_models/recipe/enko_corpus.py --seed N --n COUNT \\
        --out pairs.tsv --align gold.pharaoh [--exclude FILE] [--stats] [--reverse]

writes ``english<TAB>korean`` lines to ``--out`` and, in the same order, one alignment
line per pair to ``--align`` (both UTF-8 with "\n" line ends, each written to a temporary
file in the same directory and then renamed into place). ``--seed`` defaults to 0.
``--exclude FILE`` skips every pair whose English side appears in the first
tab-separated column of FILE (to keep a held-out test set disjoint from training data).
``--reverse`` writes the same pairs the other way round, ``korean<TAB>english``, with
Korean-first links ``j-i`` (the corpus for a Korean→English model; ``--exclude`` still reads
English sentences from column 1 of an English→Korean file).
``--stats`` prints vocabulary sizes and sentence length statistics to stderr. Bad
arguments print one error line to stderr and exit with status 2.

English sentences have 3 to 26 tokens (at most 25 words plus the final punctuation).
Short sentences repeat now and then; callers that need unique pairs deduplicate.

Python API: ``generate(seed, n)`` returns a list of :class:`Pair`; ``iter_pairs(seed)``
streams them; ``english_vocabulary()`` is every English word the grammar can produce;
``josa(noun, pair_name)`` applies the batchim rule and ``particle_splits(word)`` reads a
generated Korean word back as noun + particle. Output depends only on the seed, the
count and the exclusions: ``random.Random(seed)`` is the only source of randomness.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

# ---------------------------------------------------------------------------
# Korean postpositions
# ---------------------------------------------------------------------------

# pair name -> (form after a final consonant, form after a vowel)
PARTICLE_PAIRS: dict[str, tuple[str, str]] = {
    "이/가": ("이", "가"),
    "을/를": ("을", "를"),
    "은/는": ("은", "는"),
    "과/와": ("과", "와"),
    "으로/로": ("으로", "로"),
}
_PAIR_ALIASES = {"/".join(reversed(name.split("/"))): name for name in PARTICLE_PAIRS}

_HANGUL_FIRST = 0xAC00
_HANGUL_COUNT = 11172
_RIEUL = 8  # index of ㄹ among the final consonants


def final_consonant(word: str) -> int:
    """Index (0 = none, 1..27) of the final consonant of the last Hangul syllable of *word*."""
    if not word:
        raise ValueError("empty word has no final syllable")
    code = ord(word[-1]) - _HANGUL_FIRST
    if not 0 <= code < _HANGUL_COUNT:
        raise ValueError(f"{word!r} does not end in a Hangul syllable")
    return code % 28


def josa(noun: str, pair_name: str) -> str:
    """Attach the postposition named by *pair_name* ("을/를", "으로/로", ...) to *noun*.

    >>> josa("사과", "을/를"), josa("책", "을/를"), josa("연필", "으로/로"), josa("집", "으로/로")
    ('사과를', '책을', '연필로', '집으로')
    """
    name = _PAIR_ALIASES.get(pair_name, pair_name)
    if name not in PARTICLE_PAIRS:
        raise ValueError(f"unknown particle pair {pair_name!r}; known: {', '.join(PARTICLE_PAIRS)}")
    after_consonant, after_vowel = PARTICLE_PAIRS[name]
    final = final_consonant(noun)
    if name == "으로/로":
        return noun + (after_vowel if final in (0, _RIEUL) else after_consonant)
    return noun + (after_consonant if final else after_vowel)


# ---------------------------------------------------------------------------
# Lexicon
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Noun:
    en: str
    ko: str
    tags: frozenset[str]

    @property
    def mass(self) -> bool:
        return "mass" in self.tags


@dataclass(frozen=True)
class _Adj:
    en: str
    attr: str  # attributive form: 큰
    stem: str  # predicate stem: 크 ("" when only attributive use is allowed)
    past: str  # 컸다
    question: str  # 크니
    tags: frozenset[str]


@dataclass(frozen=True)
class _Verb:
    base: str
    third: str
    past: str
    stem: str  # 먹 (for -지, -고, -기, -겠다)
    pres: str  # 먹는다
    ko_past: str  # 먹었다
    question: str  # 먹니
    rel_pres: str  # 먹는
    rel_past: str  # 먹은
    subj: frozenset[str]  # noun tags allowed as subject (any of)
    obj: frozenset[str]  # noun tags allowed as object; empty: intransitive
    places: tuple[str, ...] = ()  # place nouns for an adverbial place phrase
    place_case: str = "loc"  # loc (에서), dest (에), dir (으로/로), live (에)
    inst: frozenset[str] = frozenset()  # instrument tags ("with a knife")
    comp: bool = False  # "with a friend"
    ben: bool = False  # "for his mother"
    rcpt: bool = False  # "to the girl" / double object
    trans: bool = False  # "by bus"
    prep: str = ""  # preposition before the object: listen *to*, wait *for*
    tenses: tuple[str, ...] = ("pres", "past", "fut")
    animal_obj: frozenset[str] = frozenset()  # object tags when the subject is an animal
    animal_places: tuple[str, ...] = ()

    @property
    def stative(self) -> bool:
        """like, love, live: no habitual time words ("every day", "often")."""
        return "fut" not in self.tenses or self.place_case == "live"

    @property
    def same_past(self) -> bool:
        return self.base == self.past


_NOUN_TABLE = """
boy 소년 P kid
girl 소녀 P kid
man 남자 P ad
woman 여자 P ad
teacher 선생님 P ad rel tch
student 학생 P kid
doctor 의사 P ad tch
farmer 농부 P ad
child 아이 P kid
friend 친구 P kid rel
mother 어머니 P ad rel tch
father 아버지 P ad rel tch
king 왕 P ad
chef 요리사 P ad
nurse 간호사 P ad
driver 운전사 P ad
artist 화가 P ad
writer 작가 P ad tch
scientist 과학자 P ad tch
grandmother 할머니 P ad rel tch
grandfather 할아버지 P ad rel tch
neighbor 이웃 P ad rel
singer 가수 P ad
uncle 삼촌 P ad rel tch
aunt 이모 P ad rel tch
prince 왕자 P kid
dog 개 A pet pred sw
cat 고양이 A pet pred cl
bird 새 A pet bird
horse 말 A ride
cow 소 A farm
rabbit 토끼 A pet prey
bear 곰 A pred sw cl
tiger 호랑이 A pred
lion 사자 A pred
monkey 원숭이 A cl
duck 오리 A sw prey farm
pig 돼지 A farm
mouse 쥐 A prey
fox 여우 A pred
elephant 코끼리 A sw
frog 개구리 A sw prey
puppy 강아지 A pet
chicken 닭 A prey farm
turtle 거북이 A pet sw
apple 사과 F af wash cut buy
bread 빵 F af mass cut mk buy
rice 밥 F af mass cook
banana 바나나 F af buy
orange 오렌지 F buy wash
cake 케이크 F mk cut buy
egg 달걀 F cook buy
cookie 쿠키 F mk buy
sandwich 샌드위치 F mk buy
pizza 피자 F mk cut buy
soup 수프 F mass mk cook
meat 고기 F af mass cut cook buy
carrot 당근 F af wash cook buy
potato 감자 F wash cook buy
tomato 토마토 F wash buy
strawberry 딸기 F wash buy
watermelon 수박 F cut buy
cheese 치즈 F af mass cut buy
kimchi 김치 F mass mk
corn 옥수수 F af mass cook buy
water 물 D mass
milk 우유 D mass buy
juice 주스 D mass buy
tea 차 D mass buy
coffee 커피 D mass buy
book 책 R give buy small
letter 편지 R W give snd
newspaper 신문 R buy
magazine 잡지 R buy
poem 시 R W
story 이야기 R W lis
novel 소설 R W buy
map 지도 R small drw
note 쪽지 R W give snd
message 메시지 R W snd
diary 일기 R W
pen 펜 O small buy give i_write i_draw
pencil 연필 O small buy give i_write i_draw
brush 붓 O small buy i_draw
knife 칼 O small buy i_cut
spoon 숟가락 O small wash i_eat
fork 포크 O small wash i_eat
key 열쇠 O small i_open
cup 컵 O small wash buy
ball 공 O small buy throw give
bag 가방 O small buy open close carry
box 상자 O open close carry mkt
hat 모자 O small buy give
chair 의자 O carry fix mkt
table 탁자 O carry fix
desk 책상 O carry
clock 시계 O fix buy
phone 전화기 O small fix buy
computer 컴퓨터 O fix buy
umbrella 우산 O small buy give
coat 외투 O wear buy
shirt 셔츠 O wear buy
dress 드레스 O wear buy
skirt 치마 O wear buy
picture 그림 O drw snd give
photo 사진 O snd give
toy 장난감 O small mkt fix give buy
doll 인형 O small mkt give buy
flower 꽃 O plant drw give buy
tree 나무 O plant drw
car 자동차 O fix drive trans
bicycle 자전거 O fix ride trans
bus 버스 O drive ride trans wt
train 기차 O ride trans wt
boat 배 O ride trans
subway 지하철 O trans wt
door 문 O open close fix
window 창문 O open close fix
bottle 병 O open
gift 선물 O give snd buy
ring 반지 O small give buy
kite 연 O mkt
stone 돌 O throw
radio 라디오 O fix lis
song 노래 O lis
music 음악 S mass lis
math 수학 S mass
english 영어 S mass
science 과학 S mass
history 역사 S mass
art 미술 S mass
korean 한국어 S mass
river 강 X cross
bridge 다리 X cross
mountain 산 X climb
house 집 L home
school 학교 L
park 공원 L
library 도서관 L
market 시장 L
hospital 병원 L
store 가게 L
restaurant 식당 L
kitchen 부엌 L home
garden 정원 L home
room 방 L home
office 사무실 L
church 교회 L
station 역 L
zoo 동물원 L
farm 농장 L
lake 호수 L
sea 바다 L
forest 숲 L
beach 해변 L
city 도시 L
village 마을 L
museum 박물관 L
cafe 카페 L
classroom 교실 L
yard 마당 L home
hotel 호텔 L
airport 공항 L
playground 운동장 L
bakery 빵집 L
theater 극장 L
pool 수영장 L
field 들판 L
"""

# attributive, predicate stem, predicate past, question, tags (classes of nouns it fits)
_ADJ_TABLE = """
big 큰 크 컸다 크니 A F O L R
small 작은 작 작았다 작니 A F O L R
red 빨간 - - - col
blue 파란 - - - col
yellow 노란 - - - col
white 하얀 - - - col A
black 검은 - - - col A
green 초록색 - - - col
brown 갈색 - - - A
new 새로운 새롭 새로웠다 새롭니 O R
heavy 무거운 무겁 무거웠다 무겁니 O
expensive 비싼 비싸 비쌌다 비싸니 O F R
cheap 싼 싸 쌌다 싸니 O F
clean 깨끗한 깨끗하 깨끗했다 깨끗하니 O L
dirty 더러운 더럽 더러웠다 더럽니 O L A
beautiful 아름다운 아름답 아름다웠다 아름답니 O L P
pretty 예쁜 예쁘 예뻤다 예쁘니 O P
kind 친절한 친절하 친절했다 친절하니 P
happy 행복한 행복하 행복했다 행복하니 P
sad 슬픈 슬프 슬펐다 슬프니 P R
hungry 배고픈 배고프 배고팠다 배고프니 P A
tired 피곤한 피곤하 피곤했다 피곤하니 P
busy 바쁜 바쁘 바빴다 바쁘니 P
young 어린 어리 어렸다 어리니 P A
smart 똑똑한 똑똑하 똑똑했다 똑똑하니 P A
famous 유명한 유명하 유명했다 유명하니 P L R
sick 아픈 아프 아팠다 아프니 P A
angry 화난 - - - P A
cute 귀여운 귀엽 귀여웠다 귀엽니 A
fast 빠른 빠르 빨랐다 빠르니 A
slow 느린 느리 느렸다 느리니 A
fresh 신선한 신선하 신선했다 신선하니 F D
sweet 달콤한 달콤하 달콤했다 달콤하니 F D
delicious 맛있는 맛있 맛있었다 맛있니 F D
hot 뜨거운 뜨겁 뜨거웠다 뜨겁니 F D
cold 차가운 차갑 차가웠다 차갑니 F D
interesting 재미있는 재미있 재미있었다 재미있니 R
funny 웃긴 웃기 웃겼다 웃기니 R
long 긴 - - - R O
quiet 조용한 조용하 조용했다 조용하니 L
noisy 시끄러운 시끄럽 시끄러웠다 시끄럽니 L
dark 어두운 어둡 어두웠다 어둡니 L
bright 밝은 밝 밝았다 밝니 L
warm 따뜻한 따뜻하 따뜻했다 따뜻하니 L D
"""

_OUTDOOR = ("park", "forest", "field", "yard", "garden", "farm", "zoo", "beach")


def _words(text: str) -> list[str]:
    return text.split()


def _verb(spec: str, **kw) -> _Verb:
    en, ko = spec.split(" : ")
    base, third, past = en.split()
    stem, pres, ko_past, question, rel_pres, rel_past = ko.split()
    for key in ("subj", "obj", "inst", "animal_obj"):
        if key in kw:
            kw[key] = frozenset(kw[key].split())
    for key in ("places", "animal_places"):
        if key in kw and isinstance(kw[key], str):
            kw[key] = tuple(kw[key].split())
    kw.setdefault("subj", frozenset({"P"}))
    kw.setdefault("obj", frozenset())
    return _Verb(base, third, past, stem, pres, ko_past, question, rel_pres, rel_past, **kw)


_VERBS: tuple[_Verb, ...] = (
    _verb(
        "eat eats ate : 먹 먹는다 먹었다 먹니 먹는 먹은",
        subj="P A",
        obj="F",
        animal_obj="af",
        places="kitchen restaurant house park cafe school garden room classroom",
        animal_places=_OUTDOOR,
        inst="i_eat",
        comp=True,
    ),
    _verb(
        "drink drinks drank : 마시 마신다 마셨다 마시니 마시는 마신",
        subj="P A",
        obj="D",
        animal_obj="D",
        places="kitchen cafe restaurant house park office room",
        animal_places=_OUTDOOR,
        comp=True,
    ),
    _verb(
        "read reads read : 읽 읽는다 읽었다 읽니 읽는 읽은",
        obj="R",
        places="library room house park classroom cafe office garden",
    ),
    _verb(
        "write writes wrote : 쓰 쓴다 썼다 쓰니 쓰는 쓴",
        obj="W",
        places="room classroom office library cafe house",
        inst="i_write",
    ),
    _verb(
        "buy buys bought : 사 산다 샀다 사니 사는 산",
        obj="buy",
        places="market store bakery city station airport",
        ben=True,
        comp=True,
    ),
    _verb(
        "see sees saw : 보 본다 봤다 보니 보는 본",
        subj="P A",
        obj="A P",
        animal_obj="A P",
        places="park zoo forest farm field garden yard city village beach",
        animal_places=_OUTDOOR,
    ),
    _verb(
        "like likes liked : 좋아하 좋아한다 좋아했다 좋아하니 좋아하는 좋아한",
        subj="P A",
        obj="F D A S",
        animal_obj="af",
        tenses=("pres", "past"),
    ),
    _verb(
        "love loves loved : 사랑하 사랑한다 사랑했다 사랑하니 사랑하는 사랑한",
        obj="P pet",
        tenses=("pres", "past"),
    ),
    _verb(
        "make makes made : 만들 만든다 만들었다 만드니 만드는 만든",
        obj="mk mkt",
        places="kitchen house bakery restaurant classroom",
        ben=True,
        comp=True,
    ),
    _verb(
        "find finds found : 찾 찾는다 찾았다 찾니 찾는 찾은",
        obj="small pet",
        places="park room garden kitchen house yard forest library classroom office",
    ),
    _verb(
        "open opens opened : 열 연다 열었다 여니 여는 연",
        obj="open",
        inst="i_open",
    ),
    _verb(
        "wash washes washed : 씻 씻는다 씻었다 씻니 씻는 씻은",
        obj="wash",
        places=("kitchen",),
    ),
    _verb(
        "clean cleans cleaned : 청소하 청소한다 청소했다 청소하니 청소하는 청소한",
        obj="home cls",
        comp=True,
    ),
    _verb(
        "draw draws drew : 그리 그린다 그렸다 그리니 그리는 그린",
        obj="drw A",
        places="park classroom room garden museum house",
        inst="i_draw",
    ),
    _verb(
        "help helps helped : 돕 돕는다 도왔다 돕니 돕는 도운",
        obj="P",
        places="school hospital farm kitchen market library office village",
    ),
    _verb(
        "meet meets met : 만나 만난다 만났다 만나니 만나는 만난",
        obj="P",
        places="park station school library cafe restaurant market airport museum theater hotel",
    ),
    _verb(
        "call calls called : 부르 부른다 불렀다 부르니 부르는 부른",
        obj="P pet",
        places="park yard house garden",
    ),
    _verb(
        "visit visits visited : 방문하 방문한다 방문했다 방문하니 방문하는 방문한",
        obj="vis",
        comp=True,
    ),
    _verb(
        "cut cuts cut : 자르 자른다 잘랐다 자르니 자르는 자른",
        obj="cut",
        places="kitchen restaurant bakery",
        inst="i_cut",
    ),
    _verb(
        "give gives gave : 주 준다 줬다 주니 주는 준",
        obj="give F",
        places="school park house classroom hospital station",
        rcpt=True,
    ),
    _verb(
        "send sends sent : 보내 보낸다 보냈다 보내니 보내는 보낸",
        obj="snd",
        places="office house school",
        rcpt=True,
    ),
    _verb(
        "teach teaches taught : 가르치 가르친다 가르쳤다 가르치니 가르치는 가르친",
        subj="tch",
        obj="S",
        places="school classroom library",
    ),
    _verb(
        "learn learns learned : 배우 배운다 배웠다 배우니 배우는 배운",
        obj="S",
        places="school classroom library house",
        comp=True,
    ),
    _verb(
        "study studies studied : 공부하 공부한다 공부했다 공부하니 공부하는 공부한",
        obj="S",
        places="library school classroom room cafe house",
        comp=True,
    ),
    _verb(
        "catch catches caught : 잡 잡는다 잡았다 잡니 잡는 잡은",
        subj="P pred",
        obj="prey throw",
        animal_obj="prey",
        places="park yard garden field forest farm playground",
        animal_places=_OUTDOOR,
    ),
    _verb(
        "throw throws threw : 던지 던진다 던졌다 던지니 던지는 던진",
        obj="throw",
        places="park playground yard field beach",
    ),
    _verb(
        "chase chases chased : 쫓 쫓는다 쫓았다 쫓니 쫓는 쫓은",
        subj="pred",
        obj="prey P",
        animal_obj="prey P",
        animal_places=("park", "yard", "forest", "field", "farm", "garden"),
    ),
    _verb(
        "wear wears wore : 입 입는다 입었다 입니 입는 입은",
        obj="wear",
        places="school office park city",
    ),
    _verb(
        "bring brings brought : 가져오 가져온다 가져왔다 가져오니 가져오는 가져온",
        obj="small F carry",
        places="school house classroom office park",
        place_case="dest",
    ),
    _verb(
        "plant plants planted : 심 심는다 심었다 심니 심는 심은",
        obj="plant",
        places="garden yard farm park field",
        comp=True,
    ),
    _verb(
        "fix fixes fixed : 고치 고친다 고쳤다 고치니 고치는 고친",
        obj="fix",
        places="house office yard kitchen room",
    ),
    _verb(
        "drive drives drove : 운전하 운전한다 운전했다 운전하니 운전하는 운전한",
        subj="ad",
        obj="drive",
        places="city village",
    ),
    _verb(
        "ride rides rode : 타 탄다 탔다 타니 타는 탄",
        obj="ride",
        places="city village park",
        comp=True,
    ),
    _verb(
        "listen listens listened : 듣 듣는다 들었다 듣니 듣는 들은",
        obj="lis",
        places="room house cafe classroom park church",
        prep="to",
        comp=True,
    ),
    _verb(
        "wait waits waited : 기다리 기다린다 기다렸다 기다리니 기다리는 기다린",
        subj="P pet",
        obj="P wt",
        animal_obj="P",
        places="station airport park school cafe library hospital restaurant hotel",
        animal_places=("park", "yard", "garden"),
        prep="for",
    ),
    _verb(
        "carry carries carried : 옮기 옮긴다 옮겼다 옮기니 옮기는 옮긴",
        obj="carry",
        places="kitchen room classroom office house school garden yard station",
        place_case="dir",
    ),
    _verb(
        "cook cooks cooked : 요리하 요리한다 요리했다 요리하니 요리하는 요리한",
        obj="cook",
        places="kitchen restaurant house",
        ben=True,
        comp=True,
    ),
    _verb(
        "climb climbs climbed : 오르 오른다 올랐다 오르니 오르는 오른",
        subj="P cl",
        obj="climb",
        animal_obj="climb",
        comp=True,
    ),
    _verb(
        "cross crosses crossed : 건너 건넌다 건넜다 건너니 건너는 건넌",
        subj="P A",
        obj="cross",
        animal_obj="cross",
        comp=True,
    ),
    _verb(
        "sleep sleeps slept : 자 잔다 잤다 자니 자는 잔",
        subj="P A",
        places="room house hotel",
        animal_places=("forest", "farm", "zoo", "yard", "house"),
    ),
    _verb(
        "run runs ran : 달리 달린다 달렸다 달리니 달리는 달린",
        subj="P A",
        places="park playground beach forest field yard school",
        animal_places=_OUTDOOR,
        comp=True,
    ),
    _verb(
        "walk walks walked : 걷 걷는다 걸었다 걷니 걷는 걸은",
        subj="P A",
        places="park beach forest field garden village city",
        animal_places=_OUTDOOR,
        comp=True,
    ),
    _verb(
        "swim swims swam : 수영하 수영한다 수영했다 수영하니 수영하는 수영한",
        subj="P sw",
        places="lake sea pool beach",
        animal_places=("lake", "sea"),
        comp=True,
    ),
    _verb(
        "dance dances danced : 춤추 춤춘다 춤췄다 춤추니 춤추는 춤춘",
        places="park school room house theater hotel classroom",
        comp=True,
    ),
    _verb(
        "sing sings sang : 노래하 노래한다 노래했다 노래하니 노래하는 노래한",
        subj="P bird",
        places="church school room park theater classroom house",
        animal_places=("forest", "garden", "park"),
        comp=True,
    ),
    _verb(
        "cry cries cried : 울 운다 울었다 우니 우는 운",
        subj="kid",
        places="room house school park classroom",
    ),
    _verb(
        "laugh laughs laughed : 웃 웃는다 웃었다 웃니 웃는 웃은",
        places="room house school park classroom theater cafe",
        comp=True,
    ),
    _verb(
        "play plays played : 놀 논다 놀았다 노니 노는 논",
        subj="kid A",
        places="park playground yard garden beach house room field school",
        animal_places=_OUTDOOR,
        comp=True,
    ),
    _verb(
        "work works worked : 일하 일한다 일했다 일하니 일하는 일한",
        subj="ad",
        places=(
            "office hospital farm restaurant store school hotel bakery market "
            "station airport museum library theater"
        ),
    ),
    _verb(
        "go goes went : 가 간다 갔다 가니 가는 간",
        places=(
            "school park library market hospital store restaurant church station zoo farm "
            "lake sea beach city village museum cafe hotel airport bakery theater pool"
        ),
        place_case="dest",
        trans=True,
        comp=True,
    ),
    _verb(
        "come comes came : 오 온다 왔다 오니 오는 온",
        places="house school park library hospital office classroom village city",
        place_case="dest",
        trans=True,
        comp=True,
    ),
    _verb(
        "live lives lived : 살 산다 살았다 사니 사는 산",
        subj="P A",
        places="city village house farm",
        animal_places=("forest", "farm", "zoo", "sea", "lake"),
        place_case="live",
    ),
)

# place nouns that may be the object of visit / clean
_VISIT = (
    "museum zoo hospital farm village city library park market school church beach lake "
    "theater bakery"
)
_CLEAN = "kitchen room classroom house office yard garden"
# objects that come in colours
_COLOURED = (
    "bag box hat chair cup ball car bicycle coat shirt dress skirt umbrella flower kite toy "
    "doll pen pencil door bus"
)
# nouns that read naturally after a possessive ("my dog", "her bag", "our school")
_OWNABLE = (
    "friend mother father teacher grandmother grandfather neighbor uncle aunt dog cat bird "
    "rabbit puppy turtle horse book letter map note diary novel poem story pen pencil brush "
    "knife key cup ball bag box hat chair table desk clock phone computer umbrella coat shirt "
    "dress skirt picture photo toy doll flower car bicycle ring kite radio house room kitchen "
    "garden yard office classroom school"
)


def _parse_nouns() -> dict[str, _Noun]:
    nouns: dict[str, _Noun] = {}
    visit, clean = set(_VISIT.split()), set(_CLEAN.split())
    own, coloured = set(_OWNABLE.split()), set(_COLOURED.split())
    for line in _NOUN_TABLE.strip().splitlines():
        en, ko, *tags = line.split()
        tagset = set(tags)
        if en in visit:
            tagset.add("vis")
        if en in clean:
            tagset.add("cls")
        if en in own:
            tagset.add("own")
        if en in coloured:
            tagset.add("col")
        nouns[en] = _Noun(en, ko, frozenset(tagset))
    return nouns


def _parse_adjectives() -> dict[str, _Adj]:
    adjs: dict[str, _Adj] = {}
    for line in _ADJ_TABLE.strip().splitlines():
        en, attr, stem, past, question, *tags = line.split()
        if stem == "-":
            stem = past = question = ""
        adjs[en] = _Adj(en, attr, stem, past, question, frozenset(tags))
    return adjs


_NOUNS = _parse_nouns()
_ADJS = _parse_adjectives()
_VERB_BY_NAME = {v.base: v for v in _VERBS}
_HUMAN = frozenset({"P", "kid", "ad", "tch"})  # subject tags that admit people
_PLACE_PREP = {"dest": "to", "dir": "to", "live": "in"}
_IN_ONLY = frozenset(
    _words("house room kitchen garden yard forest field lake sea city village classroom park pool")
)
_AT_ONLY = frozenset(_words("station airport beach bakery zoo playground"))


@dataclass(frozen=True)
class _Pronoun:
    subj: str
    obj: str
    poss: str
    topic: str  # 나는
    nom: str  # 내가
    ko_obj: str  # 나를
    ko_poss: str  # 나의
    person: str  # "1", "2", "3s", "pl"


_PRONOUNS: dict[str, _Pronoun] = {
    p.subj: p
    for p in (
        _Pronoun("i", "me", "my", "나는", "내가", "나를", "나의", "1"),
        _Pronoun("you", "you", "your", "너는", "네가", "너를", "너의", "2"),
        _Pronoun("he", "him", "his", "그는", "그가", "그를", "그의", "3s"),
        _Pronoun("she", "her", "her", "그녀는", "그녀가", "그녀를", "그녀의", "3s"),
        _Pronoun("we", "us", "our", "우리는", "우리가", "우리를", "우리의", "pl"),
        _Pronoun("they", "them", "their", "그들은", "그들이", "그들을", "그들의", "pl"),
    )
}
# subject/object pronoun combinations that would be reflexive
_CLASHES = {("i", "i"), ("you", "you"), ("we", "we"), ("i", "we"), ("we", "i")}


@dataclass(frozen=True)
class _Time:
    en: tuple[str, ...]  # English words
    ko: tuple[tuple[str, int, tuple[int, ...]], ...]  # (Korean word, sure index, possible)


def _time(en: str, *ko: tuple[str, int, tuple[int, ...]]) -> _Time:
    return _Time(tuple(en.split()), ko)


_TIMES: dict[str, tuple[_Time, ...]] = {
    "past": (
        _time("yesterday", ("어제", 0, ())),
        _time("last night", ("어젯밤", 1, (0,))),
        _time("last week", ("지난주", 1, (0,))),
        _time("last year", ("작년", 1, (0,))),
    ),
    "pres": (
        _time("every day", ("매일", 1, (0,))),
        _time("every morning", ("아침마다", 1, (0,))),
        _time("every evening", ("저녁마다", 1, (0,))),
        _time("every weekend", ("주말마다", 1, (0,))),
    ),
    "fut": (
        _time("tomorrow", ("내일", 0, ())),
        _time("tomorrow morning", ("내일", 0, ()), ("아침", 1, ())),
        _time("next week", ("다음", 0, ()), ("주", 1, ())),
        _time("next year", ("내년", 1, (0,))),
        _time("soon", ("곧", 0, ())),
    ),
    "cop_pres": (_time("now", ("지금", 0, ())), _time("today", ("오늘", 0, ()))),
    "today": (_time("today", ("오늘", 0, ())),),
}
_FREQ = (
    _time("often", ("자주", 0, ())),
    _time("always", ("항상", 0, ())),
    _time("usually", ("보통", 0, ())),
)

_FUNCTION_WORDS = (
    "the a an this that who what where is am are was were do does did will not and "
    "because with in at to for by"
)


def english_vocabulary() -> set[str]:
    """Every English word the grammar can produce (punctuation excluded)."""
    words = set(_FUNCTION_WORDS.split())
    words.update(_NOUNS)
    words.update(_ADJS)
    for verb in _VERBS:
        words.update((verb.base, verb.third, verb.past))
    for pron in _PRONOUNS.values():
        words.update((pron.subj, pron.obj, pron.poss))
    for times in (*_TIMES.values(), _FREQ):
        for time in times:
            words.update(time.en)
    return words


def korean_nouns() -> dict[str, str]:
    """Korean noun forms that take postpositions, mapped to their English words."""
    return {noun.ko: noun.en for noun in _NOUNS.values()}


# ---------------------------------------------------------------------------
# Sentence structures
# ---------------------------------------------------------------------------


class _Tok:
    """One English token; identity matters, so equal words stay distinct."""

    __slots__ = ("word",)

    def __init__(self, word: str) -> None:
        self.word = word


class _Kw:
    """One Korean word with its sure source token and possible extra sources."""

    __slots__ = ("poss", "sure", "text")

    def __init__(self, text: str, sure: _Tok, poss: Iterable[_Tok] = ()) -> None:
        self.text = text
        self.sure = sure
        self.poss = list(poss)


@dataclass
class _NP:
    noun: _Noun | None = None
    pron: _Pronoun | None = None
    det: str = ""  # "", the, a, this, that, or a possessive pronoun key (i, you, ...)
    adj: _Adj | None = None
    rel: _Clause | None = None
    conj: _NP | None = None

    @property
    def third_singular(self) -> bool:
        if self.pron is not None:
            return self.pron.person == "3s"
        return self.conj is None

    @property
    def person(self) -> str:
        if self.pron is not None:
            return self.pron.person
        return "pl" if self.conj is not None else "3s"


@dataclass
class _Clause:
    verb: _Verb | None = None  # None for a predicate adjective clause
    adj: _Adj | None = None
    subj: _NP | None = None
    obj: _NP | None = None
    rcpt: _NP | None = None
    double: bool = False  # "gave the girl an apple"
    place: _NP | None = None
    comp: _NP | None = None
    inst: _NP | None = None
    trans: _Noun | None = None
    ben: _NP | None = None
    time: _Time | None = None
    time_front: bool = False
    freq: _Time | None = None
    tense: str = "past"
    neg: bool = False
    place_prep: str = ""  # in, at, to
    gap: str = ""  # relative clauses: "subj" or "obj"


class _Builder:
    """Draws sentence structures from the grammar with one random.Random."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.by_tag: dict[str, list[_Noun]] = {}
        for noun in _NOUNS.values():
            for tag in sorted(noun.tags):
                self.by_tag.setdefault(tag, []).append(noun)
        self.adj_by_tag: dict[str, list[_Adj]] = {}
        for adj in _ADJS.values():
            for tag in sorted(adj.tags):
                self.adj_by_tag.setdefault(tag, []).append(adj)
        self.pronouns = tuple(_PRONOUNS.values())

    # -- small helpers -------------------------------------------------------

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq: Sequence):
        return seq[self.rng.randrange(len(seq))]

    def nouns_for(self, tags: Iterable[str], exclude: Iterable[str] = ()) -> list[_Noun]:
        skip = set(exclude)
        seen: dict[str, _Noun] = {}
        for tag in sorted(tags):
            for noun in self.by_tag.get(tag, ()):
                if noun.en not in skip:
                    seen[noun.en] = noun
        return list(seen.values())

    def noun_for(self, tags: Iterable[str], exclude: Iterable[str] = ()) -> _Noun:
        tags = set(tags)
        if "P" in tags and "A" in tags:  # people are more frequent than animals
            tags.discard("A" if self.chance(0.7) else "P")
        return self.pick(self.nouns_for(tags, exclude))

    def verbs(self, *, tense: str | None = None, transitive: bool | None = None) -> list[_Verb]:
        return [
            v
            for v in _VERBS
            if (tense is None or tense in v.tenses)
            and (transitive is None or bool(v.obj) == transitive)
        ]

    @staticmethod
    def kind(noun: _Noun) -> str:
        for kind in ("P", "A", "F", "D", "R", "O", "S", "L", "X"):
            if kind in noun.tags:
                return kind
        raise AssertionError(noun)

    # -- noun phrases --------------------------------------------------------

    def np(
        self, noun: _Noun, *, adj_p: float = 0.3, allow_a: bool = True, poss_p: float = 0.12
    ) -> _NP:
        kind = self.kind(noun)
        r = self.rng.random()
        if kind == "S":
            det = ""
        elif noun.mass:
            det = self.pick(("the", "the", "the", "", "", "this", "that"))
        elif "own" in noun.tags and r < (max(poss_p, 0.35) if "rel" in noun.tags else poss_p):
            det = self.pick(tuple(_PRONOUNS))
        else:
            r = self.rng.random()
            if "rel" in noun.tags:  # "a mother" reads oddly
                allow_a = False
            if r < 0.6 or (r < 0.88 and not allow_a):
                det = "the"
            elif r < 0.88:
                det = "a"
            else:
                det = "this" if r < 0.94 else "that"
        adj = None
        if kind in "PAFDROL" and self.chance(adj_p):
            options = self.adj_by_tag[kind]
            if "col" in noun.tags:
                options = options + self.adj_by_tag["col"]
            adj = self.pick(options)
        return _NP(noun=noun, det=det, adj=adj)

    def subject(self, verb: _Verb, *, pron_p: float = 0.2, coord_p: float = 0.0) -> _NP:
        if "P" in verb.subj and self.chance(pron_p):
            return _NP(pron=self.pick(self.pronouns))
        noun = self.noun_for(verb.subj)
        subj = self.np(noun)
        if self.chance(coord_p):
            subj.conj = self.np(
                self.noun_for({self.kind(noun)} & verb.subj or verb.subj, exclude=[noun.en])
            )
        return subj

    def kind_of(self, np: _NP) -> str:
        return "P" if np.pron is not None else self.kind(np.noun)

    @staticmethod
    def is_animal(np: _NP | None) -> bool:
        return np is not None and np.noun is not None and "A" in np.noun.tags

    def place(self, c: _Clause, places: Sequence[str], case: str, *, adj_p: float = 0.08):
        noun = _NOUNS[self.pick(places)]
        c.place = self.np(noun, adj_p=adj_p, allow_a=False, poss_p=0.1)
        if case != "loc":
            c.place_prep = _PLACE_PREP[case]
        elif noun.en in _IN_ONLY:
            c.place_prep = "in"
        elif noun.en in _AT_ONLY:
            c.place_prep = "at"
        else:
            c.place_prep = self.pick(("in", "at"))

    # -- clauses -------------------------------------------------------------

    def clause(
        self,
        *,
        verb: _Verb | None = None,
        subj: _NP | None = None,
        tense: str | None = None,
        neg_p: float = 0.0,
        n_mods: int = 2,
        coord_p: float = 0.0,
        pron_p: float = 0.2,
    ) -> _Clause:
        if verb is None:
            verb = self.pick(self.verbs(tense=tense, transitive=self.chance(0.72)))
        if subj is None:
            subj = self.subject(verb, pron_p=pron_p, coord_p=coord_p)
        if tense is None or tense not in verb.tenses:
            tense = self.pick_tense(verb.tenses)
        c = _Clause(verb=verb, subj=subj, tense=tense, neg=self.chance(neg_p))
        animal = self.is_animal(subj)
        if verb.obj:
            c.obj = self.object_np(verb, animal, subj)
            if c.obj.pron is None and self.chance(coord_p):
                tags = self.obj_tags(verb, animal)
                other = self.nouns_for(tags, exclude=[c.obj.noun.en, *self.names(subj)])
                if other:
                    c.obj.conj = self.np(self.pick(other))
        self.add_modifiers(c, animal, n_mods)
        return c

    @staticmethod
    def names(np: _NP | None) -> list[str]:
        out = []
        while np is not None:
            if np.noun is not None:
                out.append(np.noun.en)
            np = np.conj
        return out

    def pick_tense(self, tenses: Sequence[str]) -> str:
        weights = {"pres": 0.35, "past": 0.45, "fut": 0.2}
        r = self.rng.random() * sum(weights[t] for t in tenses)
        for t in tenses:
            r -= weights[t]
            if r < 0:
                return t
        return tenses[-1]

    @staticmethod
    def obj_tags(verb: _Verb, animal: bool) -> frozenset[str]:
        return verb.animal_obj if animal else verb.obj

    def object_np(self, verb: _Verb, animal: bool, subj: _NP | None, pron_p=0.15) -> _NP:
        tags = self.obj_tags(verb, animal)
        if "P" in tags and not animal and self.chance(pron_p):
            pron = self.pick(self.pronouns)
            if subj is None or subj.pron is None or (subj.pron.subj, pron.subj) not in _CLASHES:
                return _NP(pron=pron)
        return self.np(self.noun_for(tags, exclude=self.names(subj)))

    def add_modifiers(self, c: _Clause, animal: bool, n_mods: int) -> None:
        verb = c.verb
        assert verb is not None
        places = verb.animal_places if animal else verb.places
        slots: list[str] = []
        if places:
            slots.append("place")
        if not animal:
            slots += [
                s for s, ok in (("inst", verb.inst), ("ben", verb.ben), ("trans", verb.trans)) if ok
            ]
        if verb.comp:
            slots.append("comp")
        if verb.rcpt:
            slots.append("rcpt")
        self.rng.shuffle(slots)
        probs = {"place": 0.6, "inst": 0.35, "comp": 0.25, "ben": 0.2, "trans": 0.3, "rcpt": 0.65}
        if not verb.obj:
            probs["place"] = 0.85
        used = 0
        others = self.names(c.subj)
        for slot in slots:
            if used >= n_mods or not self.chance(probs[slot]):
                continue
            used += 1
            if slot == "place":
                self.place(c, places, verb.place_case)
            elif slot == "inst":
                c.inst = self.np(self.noun_for(verb.inst), adj_p=0.05)
            elif slot == "comp":
                tags = ("A",) if animal else ("P", "pet")
                c.comp = self.np(self.noun_for(tags, exclude=others), adj_p=0.05, poss_p=0.35)
            elif slot == "ben":
                c.ben = self.np(self.noun_for(("rel",), exclude=others), adj_p=0.0, poss_p=0.8)
            elif slot == "trans":
                c.trans = self.noun_for(("trans",))
            elif slot == "rcpt":
                c.rcpt = self.np(self.noun_for(("P",), exclude=others), adj_p=0.05, poss_p=0.3)
                c.double = self.chance(0.4)
        if verb.place_case == "live" and c.place is None and places:
            self.place(c, places, "live")
        if verb.rcpt and c.rcpt is None:  # give and send always name a recipient
            c.rcpt = self.np(self.noun_for(("P",), exclude=others), adj_p=0.05, poss_p=0.3)
            c.double = self.chance(0.4)

    def add_time(self, c: _Clause, p: float, *, front_ok: bool = False, force: bool = True):
        """Maybe add a time word agreeing with the clause's tense."""
        forced = force and self.needs_time(c)
        if c.freq is not None or (not forced and not self.chance(p)):
            return
        if c.verb is not None and c.verb.stative and c.tense == "pres":
            return
        if c.verb is None:
            pool = _TIMES["past"] + _TIMES["today"] if c.tense == "past" else _TIMES["cop_pres"]
        elif c.tense == "pres" or forced:
            pool = _TIMES[c.tense]
        else:
            pool = _TIMES[c.tense] + _TIMES["today"]
        c.time = self.pick(pool)
        c.time_front = front_ok and self.chance(0.2)

    @staticmethod
    def needs_time(c: _Clause) -> bool:
        """'i read a book' is present or past: a time word must settle which."""
        return (
            c.verb is not None
            and c.verb.same_past
            and c.subj is not None
            and not c.subj.third_singular
            and not c.neg
            and c.tense in ("pres", "past")
            and c.freq is None
        )

    def add_freq(self, c: _Clause, p: float) -> None:
        if c.tense != "pres" or c.neg or c.time is not None:
            return
        if c.verb is None and (c.subj is None or self.kind_of(c.subj) != "P"):
            return  # "the note is usually big" reads oddly
        if c.verb is not None and c.verb.stative:
            return
        if self.chance(p):
            c.freq = self.pick(_FREQ)

    def copula(self, *, subj: _NP | None = None, tense: str | None = None) -> _Clause:
        if subj is None:
            if self.chance(0.3):
                subj = _NP(pron=self.pick(self.pronouns))
            else:
                kind = self.pick("PPAFFDROL")
                subj = self.np(self.noun_for(kind), adj_p=0.0, allow_a=False)
        kind = "P" if subj.pron is not None else self.kind(subj.noun)
        adj = self.pick([a for a in self.adj_by_tag[kind] if a.stem])
        if tense is None:
            tense = "pres" if self.chance(0.5) else "past"
        return _Clause(adj=adj, subj=subj, tense=tense)

    def relative(self, head: _Noun, gap: str) -> _Clause | None:
        """A relative clause whose gap is filled by *head*, or None when nothing fits."""
        animal = "A" in head.tags
        tense = "pres" if self.chance(0.45) else "past"
        if gap == "subj":
            verbs = [v for v in _VERBS if head.tags & v.subj and not v.rcpt]
            if not verbs:
                return None
            verb = self.pick(verbs)
            c = _Clause(verb=verb, tense=tense, gap="subj")
            if verb.obj:
                c.obj = self.np(
                    self.noun_for(self.obj_tags(verb, animal), exclude=[head.en]), adj_p=0.0
                )
            places = verb.animal_places if animal else verb.places
            if places and (not verb.obj or self.chance(0.3)):
                self.place(c, places, verb.place_case, adj_p=0.0)
            return c
        verbs = [
            v for v in _VERBS if not v.prep and not v.rcpt and head.tags & v.obj and v.subj & _HUMAN
        ]
        if not verbs:
            return None
        verb = self.pick(verbs)
        subj = self.np(self.noun_for(verb.subj & _HUMAN, exclude=[head.en]), adj_p=0.0)
        c = _Clause(verb=verb, subj=subj, tense=tense, gap="obj")
        if verb.places and self.chance(0.25):
            self.place(c, verb.places, verb.place_case, adj_p=0.0)
        return c

    def attach_relative(self, np: _NP, prefer: str) -> None:
        if np.noun is None or "S" in np.noun.tags:  # "math that ..." reads oddly
            return
        other = "obj" if prefer == "subj" else "subj"
        np.rel = self.relative(np.noun, prefer) or self.relative(np.noun, other)
        np.conj = None
        if np.det not in ("the", "a"):
            np.det = "the"

    # -- sentences -----------------------------------------------------------

    def sentence(self) -> tuple[list[_Tok], list[_Kw]]:
        r = self.rng.random()
        if r < 0.42:
            return self.simple()
        if r < 0.50:
            return self.negated()
        if r < 0.59:
            return self.yes_no()
        if r < 0.65:
            return self.wh_question()
        if r < 0.75:
            return self.copular()
        if r < 0.83:
            return self.compound()
        if r < 0.91:
            return self.because()
        return self.with_relative()

    def simple(self) -> tuple[list[_Tok], list[_Kw]]:
        c = self.clause(coord_p=0.07, n_mods=self.pick((1, 2, 2, 3)))
        self.add_freq(c, 0.12)
        self.add_time(c, 0.5, front_ok=True)
        return _render_sentence([c], ".")

    def negated(self) -> tuple[list[_Tok], list[_Kw]]:
        c = self.clause(neg_p=1.0, n_mods=self.pick((1, 1, 2)))
        self.add_time(c, 0.3)
        return _render_sentence([c], ".")

    @staticmethod
    def not_asking_oneself(c: _Clause) -> None:
        """Questions address the listener: 'did i eat ?' becomes 'did you eat ?'."""
        if c.subj is not None and c.subj.pron is not None and c.subj.pron.subj == "i":
            c.subj = _NP(pron=_PRONOUNS["you"])
            if c.obj is not None and c.obj.pron is not None and c.obj.pron.subj == "you":
                c.obj = _NP(pron=_PRONOUNS["i"])

    def yes_no(self) -> tuple[list[_Tok], list[_Kw]]:
        c = self.copula() if self.chance(0.25) else self.clause(n_mods=self.pick((1, 1, 2)))
        self.not_asking_oneself(c)
        self.add_time(c, 0.3, force=False)
        return _render_question(c)

    def wh_question(self) -> tuple[list[_Tok], list[_Kw]]:
        r = self.rng.random()
        if r < 0.35:
            verb = self.pick([v for v in self.verbs(transitive=True) if not v.prep])
            c = self.clause(verb=verb, n_mods=self.pick((1, 1, 2)))
            c.obj = None
            self.not_asking_oneself(c)
            human_subj = not self.is_animal(c.subj)
            wh = "who-obj" if human_subj and "P" in verb.obj and self.chance(0.5) else "what-obj"
            self.add_time(c, 0.3, force=False)
            return _render_question(c, wh=wh)
        if r < 0.65:
            he = _NP(pron=_PRONOUNS["he"])
            if self.chance(0.2):
                c = self.copula(subj=he)
            else:
                verbs = [v for v in _VERBS if v.subj & _HUMAN]
                c = self.clause(verb=self.pick(verbs), subj=he, n_mods=self.pick((1, 1, 2)))
            c.subj = None
            self.add_time(c, 0.25, force=False)
            return _render_question(c, wh="who-subj")
        verbs = [v for v in _VERBS if v.places and v.place_case in ("loc", "live")]
        verbs += [_VERB_BY_NAME["go"], _VERB_BY_NAME["come"]]
        c = self.clause(verb=self.pick(verbs), n_mods=0)
        c.place = None
        self.not_asking_oneself(c)
        self.add_time(c, 0.3, force=False)
        return _render_question(c, wh="where")

    def copular(self) -> tuple[list[_Tok], list[_Kw]]:
        c = self.copula()
        if c.subj.pron is None and self.chance(0.12):
            noun = c.subj.noun
            c.subj.conj = self.np(self.noun_for(self.kind(noun), exclude=[noun.en]), adj_p=0.0)
        c.neg = self.chance(0.25)
        self.add_freq(c, 0.3)
        self.add_time(c, 0.45, front_ok=True)
        return _render_sentence([c], ".")

    def any_clause(self, tense: str, n_mods: int) -> _Clause:
        if tense != "fut" and self.chance(0.2):
            c = self.copula(tense=tense)
            c.neg = self.chance(0.15)
        else:
            c = self.clause(tense=tense, neg_p=0.12, n_mods=n_mods)
        self.add_freq(c, 0.08)
        return c

    def compound(self) -> tuple[list[_Tok], list[_Kw]]:
        tense = self.pick_tense(("pres", "past", "fut"))
        first = self.any_clause(tense, self.pick((0, 1, 1)))
        second = self.any_clause(tense, self.pick((0, 1, 1)))
        self.add_time(first, 0.15)
        self.add_time(second, 0.15)
        return _render_sentence([first, second], ".", joiner="and")

    def because(self) -> tuple[list[_Tok], list[_Kw]]:
        tense = self.pick_tense(("pres", "past", "fut"))
        main = self.any_clause(tense, self.pick((0, 1, 1)))
        sub_tense = "past" if tense == "past" or self.chance(0.4) else "pres"
        sub = self.any_clause(sub_tense, self.pick((0, 0, 1)))
        self.add_time(main, 0.15)
        self.add_time(sub, 0.1)
        return _render_sentence([main, sub], ".", joiner="because")

    def with_relative(self) -> tuple[list[_Tok], list[_Kw]]:
        if self.chance(0.55):
            # relative clause on the subject
            if self.chance(0.2):
                c = self.copula()
                if c.subj.pron is not None:
                    c = self.copula(subj=self.np(self.noun_for("P"), adj_p=0.0))
            else:
                c = self.clause(pron_p=0.0, neg_p=0.1, n_mods=self.pick((0, 1, 1)))
            self.attach_relative(c.subj, "subj" if self.chance(0.7) else "obj")
            self.add_time(c, 0.2)
        else:
            # relative clause on the object: nothing may follow it
            verbs = [v for v in self.verbs(transitive=True) if not v.prep and not v.rcpt]
            c = self.clause(verb=self.pick(verbs), neg_p=0.1, n_mods=0)
            if c.obj.pron is not None:
                tags = self.obj_tags(c.verb, self.is_animal(c.subj))
                c.obj = self.np(self.noun_for(tags, exclude=self.names(c.subj)))
            self.attach_relative(c.obj, "subj" if self.chance(0.5) else "obj")
            if self.needs_time(c):
                self.add_time(c, 1.0)
                c.time_front = True
        return _render_sentence([c], ".")


# ---------------------------------------------------------------------------
# Rendering: English tokens and Korean words together
# ---------------------------------------------------------------------------

_CASE_PARTICLE = {
    "subj": "이/가",
    "topic": "은/는",
    "obj": "을/를",
    "comp": "과/와",
    "inst": "으로/로",
    "dir": "으로/로",
    "ben": "을/를",
}
_FIXED_PARTICLE = {"loc": "에서", "dest": "에", "live": "에", "rcpt": "에게"}


def _attach(noun_ko: str, case: str) -> str:
    if case in _CASE_PARTICLE:
        return josa(noun_ko, _CASE_PARTICLE[case])
    if case in _FIXED_PARTICLE:
        return noun_ko + _FIXED_PARTICLE[case]
    raise AssertionError(case)


def _article(next_word: str) -> str:
    return "an" if next_word[0] in "aeiou" else "a"


def _render_np(
    np: _NP, case: str, poss: Sequence[_Tok] = (), *, nominative: bool = False
) -> tuple[list[_Tok], list[_Kw]]:
    """English tokens and Korean words of a noun phrase in the given case."""
    if np.conj is not None:
        first = _NP(noun=np.noun, det=np.det, adj=np.adj)
        e1, k1 = _render_np(first, "comp")
        and_tok = _Tok("and")
        k1[-1].poss.append(and_tok)
        e2, k2 = _render_np(np.conj, case, poss, nominative=nominative)
        return [*e1, and_tok, *e2], k1 + k2
    if np.pron is not None:
        pron = np.pron
        if case in ("subj", "topic"):
            tok = _Tok(pron.subj)
            text = pron.topic if case == "topic" and not nominative else pron.nom
        elif case == "obj":
            tok = _Tok(pron.obj)
            text = pron.ko_obj
        else:
            raise AssertionError(case)
        return [tok], [_Kw(text, tok, poss)]
    noun = np.noun
    assert noun is not None
    eng: list[_Tok] = []
    kor: list[_Kw] = []
    if np.rel is not None:
        rel_eng, rel_kor = _render_relative(np.rel, noun)
    else:
        rel_eng, rel_kor = [], []
    kor.extend(rel_kor)
    noun_poss: list[_Tok] = list(poss)
    det_tok = None
    if np.det:
        if np.det in _PRONOUNS:
            pron = _PRONOUNS[np.det]
            det_tok = _Tok(pron.poss)
            kor.append(_Kw(pron.ko_poss, det_tok))
        elif np.det in ("this", "that"):
            det_tok = _Tok(np.det)
            kor.append(_Kw("이" if np.det == "this" else "저", det_tok))
        else:
            first_word = np.adj.en if np.adj is not None else noun.en
            det_tok = _Tok(_article(first_word) if np.det == "a" else np.det)
            noun_poss.append(det_tok)
        eng.append(det_tok)
    if np.adj is not None:
        adj_tok = _Tok(np.adj.en)
        eng.append(adj_tok)
        kor.append(_Kw(np.adj.attr, adj_tok))
    noun_tok = _Tok(noun.en)
    eng.append(noun_tok)
    kor.append(_Kw(_attach(noun.ko, case), noun_tok, noun_poss))
    eng.extend(rel_eng)
    return eng, kor


def _verb_words(
    c: _Clause, form: str, verb_tok: _Tok, aux: Sequence[_Tok], not_tok: _Tok | None
) -> list[_Kw]:
    """Korean predicate words for a clause; form is decl, q, conn, cause or rel."""
    if c.verb is not None:
        v = c.verb
        stem, past_stem = v.stem, v.ko_past[:-1]
        forms = {
            ("decl", "pres"): v.pres,
            ("decl", "past"): v.ko_past,
            ("decl", "fut"): stem + "겠다",
            ("q", "pres"): v.question,
            ("q", "past"): past_stem + "니",
            ("q", "fut"): stem + "겠니",
            ("conn", "pres"): stem + "고",
            ("conn", "past"): past_stem + "고",
            ("conn", "fut"): stem + "고",
            ("cause", "pres"): stem + "기",
            ("cause", "past"): past_stem + "기",
            ("rel", "pres"): v.rel_pres,
            ("rel", "past"): v.rel_past,
        }
        neg_aux = {
            ("decl", "pres"): "않는다",
            ("decl", "past"): "않았다",
            ("decl", "fut"): "않겠다",
            ("conn", "pres"): "않고",
            ("conn", "past"): "않았고",
            ("conn", "fut"): "않고",
            ("cause", "pres"): "않기",
            ("cause", "past"): "않았기",
        }
    else:
        a = c.adj
        assert a is not None
        stem, past_stem = a.stem, a.past[:-1]
        forms = {
            ("decl", "pres"): stem + "다",
            ("decl", "past"): a.past,
            ("q", "pres"): a.question,
            ("q", "past"): past_stem + "니",
            ("conn", "pres"): stem + "고",
            ("conn", "past"): past_stem + "고",
            ("cause", "pres"): stem + "기",
            ("cause", "past"): past_stem + "기",
        }
        neg_aux = {
            ("decl", "pres"): "않다",
            ("decl", "past"): "않았다",
            ("conn", "pres"): "않고",
            ("conn", "past"): "않았고",
            ("cause", "pres"): "않기",
            ("cause", "past"): "않았기",
        }
    key = (form, c.tense)
    if c.neg:
        assert not_tok is not None
        return [_Kw(stem + "지", verb_tok), _Kw(neg_aux[key], not_tok, aux)]
    return [_Kw(forms[key], verb_tok, aux)]


def _english_verb_group(
    c: _Clause, subj: _NP | None
) -> tuple[list[_Tok], _Tok, list[_Tok], _Tok | None]:
    """Declarative English verb group: (tokens, main verb token, auxiliaries, 'not')."""
    third = subj is None or subj.third_singular
    person = "3s" if subj is None else subj.person
    not_tok = _Tok("not") if c.neg else None
    freq = [_Tok(w) for w in c.freq.en] if c.freq is not None else []
    if c.verb is None:
        assert c.adj is not None
        if c.tense == "pres":
            be = {"1": "am", "3s": "is"}.get(person, "are")
        else:
            be = "was" if person in ("1", "3s") else "were"
        be_tok, adj_tok = _Tok(be), _Tok(c.adj.en)
        toks = [be_tok, *([not_tok] if not_tok else []), *freq, adj_tok]
        return toks, adj_tok, [be_tok], not_tok
    v = c.verb
    if c.tense == "fut":
        will, verb_tok = _Tok("will"), _Tok(v.base)
        return [will, *([not_tok] if not_tok else []), verb_tok], verb_tok, [will], not_tok
    if c.neg:
        do = "did" if c.tense == "past" else ("does" if third else "do")
        do_tok, verb_tok = _Tok(do), _Tok(v.base)
        return [do_tok, not_tok, verb_tok], verb_tok, [do_tok], not_tok
    word = v.past if c.tense == "past" else (v.third if third else v.base)
    verb_tok = _Tok(word)
    return [*freq, verb_tok], verb_tok, [], None


@dataclass
class _Parts:
    """English and Korean pieces of one clause, before they are ordered."""

    subj_e: list[_Tok] = field(default_factory=list)
    subj_k: list[_Kw] = field(default_factory=list)
    post_e: list[_Tok] = field(default_factory=list)  # English after the verb group
    mid_k: list[_Kw] = field(default_factory=list)  # Korean between subject and predicate
    time_e: list[_Tok] = field(default_factory=list)
    time_k: list[_Kw] = field(default_factory=list)
    freq_k: list[_Kw] = field(default_factory=list)


def _time_words(time: _Time) -> tuple[list[_Tok], list[_Kw]]:
    toks = [_Tok(w) for w in time.en]
    return toks, [_Kw(text, toks[s], [toks[p] for p in poss]) for text, s, poss in time.ko]


def _clause_parts(c: _Clause, *, subj_case: str, nominative: bool, freq_tok: list[_Tok]) -> _Parts:
    """Render everything in a clause except its verb group."""
    parts = _Parts()
    if c.subj is not None:
        parts.subj_e, parts.subj_k = _render_np(c.subj, subj_case, nominative=nominative)
    verb = c.verb
    post: list[_Tok] = []
    k_rcpt: list[_Kw] = []
    k_obj: list[_Kw] = []
    k_dest: list[_Kw] = []
    k_inst: list[_Kw] = []
    k_trans: list[_Kw] = []
    k_comp: list[_Kw] = []
    k_ben: list[_Kw] = []
    k_loc: list[_Kw] = []
    if c.rcpt is not None and c.double:
        e, k_rcpt = _render_np(c.rcpt, "rcpt")
        post += e
    if c.obj is not None:
        assert verb is not None
        prep = [_Tok(verb.prep)] if verb.prep else []
        e, k_obj = _render_np(c.obj, "obj", prep)
        post += prep + e
    if c.rcpt is not None and not c.double:
        to = _Tok("to")
        e, k_rcpt = _render_np(c.rcpt, "rcpt", [to])
        post += [to, *e]
    place_case = verb.place_case if verb is not None else "loc"
    if c.place is not None and place_case != "loc":
        prep_tok = _Tok(c.place_prep)
        e, k_dest = _render_np(c.place, place_case, [prep_tok])
        post += [prep_tok, *e]
    if c.inst is not None:
        with_tok = _Tok("with")
        e, k_inst = _render_np(c.inst, "inst", [with_tok])
        post += [with_tok, *e]
    if c.trans is not None:
        by_tok, noun_tok = _Tok("by"), _Tok(c.trans.en)
        k_trans = [_Kw(_attach(c.trans.ko, "inst"), noun_tok, [by_tok])]
        post += [by_tok, noun_tok]
    if c.comp is not None:
        with_tok = _Tok("with")
        e, k_comp = _render_np(c.comp, "comp", [with_tok])
        k_comp.append(_Kw("함께", with_tok))
        post += [with_tok, *e]
    if c.ben is not None:
        for_tok = _Tok("for")
        e, k_ben = _render_np(c.ben, "ben", [for_tok])
        k_ben.append(_Kw("위해", for_tok))
        post += [for_tok, *e]
    if c.place is not None and place_case == "loc":
        prep_tok = _Tok(c.place_prep)
        e, k_loc = _render_np(c.place, "loc", [prep_tok])
        post += [prep_tok, *e]
    parts.post_e = post
    parts.mid_k = k_loc + k_comp + k_ben + k_rcpt + k_trans + k_inst + k_dest + k_obj
    if c.time is not None:
        parts.time_e, parts.time_k = _time_words(c.time)
    if c.freq is not None:
        assert freq_tok
        parts.freq_k = [_Kw(c.freq.ko[0][0], freq_tok[0])]
    return parts


def _render_clause(c: _Clause, form: str) -> tuple[list[_Tok], list[_Kw]]:
    """A declarative clause (form: decl, conn or cause) in English and Korean order."""
    subj = c.subj
    assert subj is not None
    group, verb_tok, aux, not_tok = _english_verb_group(c, subj)
    freq_tok = [t for t in group if c.freq is not None and t.word in c.freq.en]
    topic = form != "cause" and (c.verb is None or subj.pron is not None)
    parts = _clause_parts(
        c, subj_case="topic" if topic else "subj", nominative=form == "cause", freq_tok=freq_tok
    )
    pred = _verb_words(c, form, verb_tok, aux, not_tok)
    eng = parts.subj_e + group + parts.post_e
    eng = parts.time_e + eng if c.time_front else eng + parts.time_e
    kor = parts.subj_k + parts.time_k + parts.freq_k + parts.mid_k + pred
    return eng, kor


def _render_relative(c: _Clause, head: _Noun) -> tuple[list[_Tok], list[_Kw]]:
    """English "who reads a book" / "that the boy made" and the Korean modifier before the head."""
    human = "P" in head.tags
    pron_tok = _Tok("who" if human and c.gap == "subj" else "that")
    if c.gap == "subj":
        verb = c.verb
        assert verb is not None
        verb_tok = _Tok(verb.third if c.tense == "pres" else verb.past)
        parts = _clause_parts(c, subj_case="subj", nominative=True, freq_tok=[])
        eng = [pron_tok, verb_tok, *parts.post_e]
    else:
        assert c.verb is not None and c.subj is not None
        verb_tok = _Tok(c.verb.third if c.tense == "pres" else c.verb.past)
        parts = _clause_parts(c, subj_case="subj", nominative=True, freq_tok=[])
        eng = [pron_tok, *parts.subj_e, verb_tok, *parts.post_e]
    pred = _verb_words(c, "rel", verb_tok, [pron_tok], None)
    return eng, parts.subj_k + parts.mid_k + pred


def _render_sentence(
    clauses: list[_Clause], punct: str, joiner: str = ""
) -> tuple[list[_Tok], list[_Kw]]:
    end = _Tok(punct)
    if not joiner:
        eng, kor = _render_clause(clauses[0], "decl")
    elif joiner == "and":
        e1, k1 = _render_clause(clauses[0], "conn")
        e2, k2 = _render_clause(clauses[1], "decl")
        and_tok = _Tok("and")
        k1[-1].poss.append(and_tok)
        eng, kor = [*e1, and_tok, *e2], k1 + k2
    else:
        e1, k1 = _render_clause(clauses[0], "decl")
        e2, k2 = _render_clause(clauses[1], "cause")
        because = _Tok("because")
        eng = [*e1, because, *e2]
        kor = [*k2, _Kw("때문에", because), *k1]
    return [*eng, end], [*kor, _Kw(punct, end)]


def _render_question(c: _Clause, wh: str = "") -> tuple[list[_Tok], list[_Kw]]:
    """Yes/no questions and what/who/where questions."""
    q = _Tok("?")
    subj = c.subj
    wh_tok = _Tok(wh.split("-")[0]) if wh else None
    if wh == "who-subj":
        # "who ate the apple ?" -> 누가 사과를 먹었니 ?
        assert wh_tok is not None
        group, verb_tok, aux, _ = _english_verb_group(c, None)
        parts = _clause_parts(c, subj_case="subj", nominative=True, freq_tok=[])
        eng = [wh_tok, *group, *parts.post_e, *parts.time_e]
        kor = [_Kw("누가", wh_tok), *parts.time_k, *parts.mid_k]
        kor += _verb_words(c, "q", verb_tok, aux, None)
        return [*eng, q], [*kor, _Kw("?", q)]
    assert subj is not None
    third, person = subj.third_singular, subj.person
    if c.verb is None:
        assert c.adj is not None
        if c.tense == "pres":
            be = {"1": "am", "3s": "is"}.get(person, "are")
        else:
            be = "was" if person in ("1", "3s") else "were"
        aux_tok, verb_tok = _Tok(be), _Tok(c.adj.en)
    else:
        if c.tense == "fut":
            aux_word = "will"
        elif c.tense == "past":
            aux_word = "did"
        else:
            aux_word = "does" if third else "do"
        aux_tok, verb_tok = _Tok(aux_word), _Tok(c.verb.base)
    parts = _clause_parts(
        c, subj_case="topic" if c.verb is None else "subj", nominative=False, freq_tok=[]
    )
    if subj.pron is not None:
        topic = _render_np(subj, "topic")
        parts.subj_e, parts.subj_k = topic
    head = [wh_tok] if wh_tok is not None else []
    eng = [*head, aux_tok, *parts.subj_e, verb_tok, *parts.post_e, *parts.time_e]
    mid = parts.mid_k
    if wh == "what-obj" or wh == "who-obj":
        text = "무엇을" if wh == "what-obj" else "누구를"
        mid = [*mid, _Kw(text, wh_tok)]
    elif wh == "where":
        assert c.verb is not None
        text = "어디에서" if c.verb.place_case == "loc" else "어디에"
        mid = [_Kw(text, wh_tok), *mid]
    kor = parts.subj_k + parts.time_k + mid + _verb_words(c, "q", verb_tok, [aux_tok], None)
    return [*eng, q], [*kor, _Kw("?", q)]


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Pair:
    """One sentence pair with its gold alignment (possible ⊇ sure)."""

    english: str
    korean: str
    sure: tuple[tuple[int, int], ...]
    possible: tuple[tuple[int, int], ...]

    def pharaoh(self) -> str:
        """Links sorted by (j, i): ``i-j`` sure, ``i?j`` possible only."""
        sure = set(self.sure)
        links = sorted(self.possible, key=_link_order)
        return " ".join(f"{i}-{j}" if (i, j) in sure else f"{i}?{j}" for i, j in links)

    def pharaoh_reversed(self) -> str:
        """The same links Korean index first (``j-i``, ``j?i``), for Korean→English."""
        sure = set(self.sure)
        links = sorted(self.possible)  # by (i, j): the new target index first
        return " ".join(f"{j}-{i}" if (i, j) in sure else f"{j}?{i}" for i, j in links)


MIN_ENGLISH_TOKENS = 3  # final punctuation included
MAX_ENGLISH_TOKENS = 26  # at most 25 words plus the final punctuation


def _link_order(link: tuple[int, int]) -> tuple[int, int]:
    return link[1], link[0]


def _to_pair(eng: list[_Tok], kor: list[_Kw]) -> Pair:
    index = {id(tok): i for i, tok in enumerate(eng)}
    sure: set[tuple[int, int]] = set()
    possible: set[tuple[int, int]] = set()
    for j, word in enumerate(kor):
        i = index[id(word.sure)]
        sure.add((i, j))
        possible.add((i, j))
        for tok in word.poss:
            possible.add((index[id(tok)], j))
    return Pair(
        english=" ".join(t.word for t in eng),
        korean=" ".join(w.text for w in kor),
        sure=tuple(sorted(sure, key=_link_order)),
        possible=tuple(sorted(possible, key=_link_order)),
    )


def iter_pairs(seed: int) -> Iterator[Pair]:
    """An endless, deterministic stream of pairs for *seed*."""
    builder = _Builder(random.Random(seed))
    while True:
        eng, kor = builder.sentence()
        if not MIN_ENGLISH_TOKENS <= len(eng) <= MAX_ENGLISH_TOKENS:
            continue
        yield _to_pair(eng, kor)


def generate(seed: int, n: int, *, exclude: Iterable[str] = ()) -> list[Pair]:
    """The first *n* pairs for *seed*, skipping pairs whose English side is in *exclude*."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    skip = set(exclude)
    pairs: list[Pair] = []
    stream = iter_pairs(seed)
    budget = 100 * n + 10_000
    while len(pairs) < n:
        budget -= 1
        if budget < 0:
            raise RuntimeError("too many generated pairs are excluded; cannot reach the count")
        pair = next(stream)
        if pair.english not in skip:
            pairs.append(pair)
    return pairs


def particle_splits(word: str) -> list[tuple[str, str, str]]:
    """Ways to read a Korean word as known noun + alternating particle.

    Returns ``(noun, particle, pair_name)`` triples; a word such as ``사과를`` gives
    ``[("사과", "를", "을/를")]``. Useful to audit the batchim rule on generated text.
    """
    nouns = korean_nouns()
    out = []
    for name, forms in PARTICLE_PAIRS.items():
        for form in forms:
            if word.endswith(form) and word[: -len(form)] in nouns:
                out.append((word[: -len(form)], form, name))
    return out


def stats(pairs: Sequence[Pair]) -> dict[str, float]:
    """Vocabulary sizes and length statistics (punctuation tokens counted as words)."""
    en_lens = [len(p.english.split(" ")) for p in pairs]
    ko_lens = [len(p.korean.split(" ")) for p in pairs]
    en_vocab = {w for p in pairs for w in p.english.split(" ")} - {".", "?"}
    ko_vocab = {w for p in pairs for w in p.korean.split(" ")} - {".", "?"}
    n = max(len(pairs), 1)
    return {
        "pairs": len(pairs),
        "distinct_english": len({p.english for p in pairs}),
        "grammar_english_vocab": len(english_vocabulary()),
        "english_vocab": len(en_vocab),
        "korean_vocab": len(ko_vocab),
        "english_len_min": min(en_lens, default=0),
        "english_len_mean": sum(en_lens) / n,
        "english_len_max": max(en_lens, default=0),
        "korean_len_min": min(ko_lens, default=0),
        "korean_len_mean": sum(ko_lens) / n,
        "korean_len_max": max(ko_lens, default=0),
    }


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str):  # one line on stderr, exit status 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def _write_atomic(path: str, lines: Iterable[str]) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for line in lines:
                f.write(line + "\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates the file private to its owner
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _read_exclude(path: str) -> set[str]:
    with open(path, encoding="utf-8") as f:
        return {line.rstrip("\n").split("\t", 1)[0] for line in f if line.strip()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = _ArgumentParser(
        prog="enko_corpus.py",
        description="Generate English→Korean sentence pairs with gold word alignments.",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--n", type=int, required=True, help="number of pairs")
    parser.add_argument("--out", required=True, help="output TSV: english<TAB>korean")
    parser.add_argument("--align", required=True, help="output Pharaoh alignments")
    parser.add_argument("--exclude", help="skip pairs whose English is in this file's column 1")
    parser.add_argument("--stats", action="store_true", help="print statistics to stderr")
    parser.add_argument(
        "--reverse",
        action="store_true",
        help="write korean<TAB>english and Korean-first links (for Korean→English)",
    )
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error(f"argument --n: must be >= 0, got {args.n}")
    if os.path.abspath(args.out) == os.path.abspath(args.align):
        parser.error("--out and --align must be different files")
    exclude: set[str] = set()
    if args.exclude is not None:
        try:
            exclude = _read_exclude(args.exclude)
        except OSError as exc:
            parser.error(f"argument --exclude: cannot read {args.exclude}: {exc.strerror}")
    for path in (args.out, args.align):
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            parser.error(f"directory for {path} does not exist")
    try:
        pairs = generate(args.seed, args.n, exclude=exclude)
    except RuntimeError as exc:
        print(f"enko_corpus.py: error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.reverse:
            _write_atomic(args.out, (f"{p.korean}\t{p.english}" for p in pairs))
            _write_atomic(args.align, (p.pharaoh_reversed() for p in pairs))
        else:
            _write_atomic(args.out, (f"{p.english}\t{p.korean}" for p in pairs))
            _write_atomic(args.align, (p.pharaoh() for p in pairs))
    except OSError as exc:
        print(f"enko_corpus.py: error: cannot write output: {exc}", file=sys.stderr)
        return 1
    if args.stats:
        for key, value in stats(pairs).items():
            shown = f"{value:.2f}" if isinstance(value, float) else str(value)
            print(f"{key}: {shown}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
