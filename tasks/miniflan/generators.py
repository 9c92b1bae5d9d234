"""One generator per task family of the offline mini-Flan.

Each generator takes the task spec and a seeded Picker and returns one example as canonical
fields (the names the templates use) plus `label` (index into the options) for
classification, `options` when choices differ per example, or `answer` for generation.
Labels follow a simple rule on the input so that a small LM can learn them (a cue word,
a negation, a sub-phrase, a lexicon look-up), and every family draws on its own
vocabulary and layout, so that clusters look different to the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tasks.miniflan import lexicon as L
from tasks.spec import TaskSpec

Example = dict[str, Any]


class Picker:
    """Fast seeded choices: draws random ints from numpy in blocks, hands them out one by one."""

    def __init__(self, seed: int, block: int = 8192):
        self._rng = np.random.default_rng(seed)
        self._block = block
        self._buf: list[int] = []

    def _next(self) -> int:
        if not self._buf:
            self._buf = self._rng.integers(0, 2**31 - 1, size=self._block).tolist()
        return self._buf.pop()

    def idx(self, n: int) -> int:
        return self._next() % n

    def pick(self, seq: Sequence[Any]) -> Any:
        return seq[self._next() % len(seq)]

    def coin(self, p_num: int = 1, p_den: int = 2) -> bool:
        return self._next() % p_den < p_num

    def num(self, lo: int, hi: int) -> int:
        """Uniform integer in [lo, hi]."""
        return lo + self._next() % (hi - lo + 1)

    def sample(self, seq: Sequence[Any], k: int) -> list[Any]:
        pool = list(seq)
        return [pool.pop(self._next() % len(pool)) for _ in range(k)]

    def shuffled(self, seq: Sequence[Any]) -> list[Any]:
        return self.sample(seq, len(seq))


def _a(word: str) -> str:
    """The word with its indefinite article."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def _choices(p: Picker, correct: str, wrong: Sequence[str]) -> Example:
    """Options with the correct one at a random position."""
    opts = list(wrong)
    pos = p.idx(len(opts) + 1)
    opts.insert(pos, correct)
    return {"options": opts, "label": pos}


def _pair(p: Picker) -> tuple[str, str, str]:
    """Two distinct same-gender names and their pronoun (keeps the pronoun ambiguous)."""
    if p.coin():
        a, b = p.sample(L.FEMALE, 2)
        return a, b, "she"
    a, b = p.sample(L.MALE, 2)
    return a, b, "he"


# ----------------------------------------------------------------------------- NLI
def nli(spec: TaskSpec, p: Picker) -> Example:
    n_opts = len(spec.options or ())
    name, (past, base), adj, obj, city = p.pick(L.NAMES), p.pick(L.VERBS), p.pick(L.NLI_ADJ), p.pick(L.OBJECTS), p.pick(L.CITIES)
    when = p.pick(L.TIMES)
    if spec.name == "snli":  # image-caption style, as SNLI premises are
        who = f"A {p.pick(['man', 'woman', 'boy', 'girl'])} in a {p.pick(L.COLORS)} shirt"
        premise = f"{who} {past} {_a(adj)} {obj} outside."
        subj = who.split(" in ")[0]
    else:
        subj = name
        premise = f"{name} {past} the {adj} {obj} in {city} {when}."
        if spec.name.startswith("anli"):  # adversarial NLI: longer, wiki-like contexts
            premise = f"{name} {p.pick(L.SURNAMES)} is {_a(p.pick(L.JOBS))} from {p.pick(L.CITIES)}. " + premise
        elif spec.name == "cb":
            premise = f"\"I think {premise[:-1]},\" said {p.pick(L.NAMES)}."
    # 2-way tasks (RTE, ...) draw "entailed" half the time, so the labels stay balanced.
    cls = p.idx(3) if n_opts == 3 else (0 if p.coin() else p.num(1, 2))
    if cls == 0:
        hyp = p.pick([f"{subj} {past} the {obj}.", f"Someone {past} a {obj}.", f"The {obj} was {past} by {subj}."])
    elif cls == 1:
        hyp = f"{subj} {past} the {obj} {p.pick(L.NLI_EXTRA)}."
    else:
        hyp = f"{subj} " + p.pick(L.NEGATIONS).format(past=past, base=base) + f" the {obj}."
    label = cls if n_opts == 3 else (0 if cls == 0 else 1)
    return {"premise": premise, "hypothesis": hyp, "label": label}


def wnli(spec: TaskSpec, p: Picker) -> Example:
    frame, cues_a, cues_b = p.pick(L.COREF_FRAMES)
    a, b, pron = _pair(p)
    to_a = p.coin()
    cue = p.pick(cues_a if to_a else cues_b)
    sent = frame.format(A=a, B=b, p=pron, cue=cue)
    claim_a = p.coin()
    hyp = f"{a if claim_a else b} was {cue}."
    return {"premise": sent, "hypothesis": hyp, "label": 0 if claim_a == to_a else 1}


def qnli(spec: TaskSpec, p: Picker) -> Example:
    name, city, year, job, spouse = p.pick(L.NAMES), p.pick(L.CITIES), p.num(1900, 1999), p.pick(L.JOBS), p.pick(L.NAMES)
    facts = {
        "birth": f"{name} {p.pick(L.SURNAMES)} was born in {city} in {year}.",
        "job": f"For many years {name} worked as a {job} in {city}.",
        "spouse": f"{name} married {spouse} after they met at university.",
    }
    questions = {
        "birth": [f"Where was {name} born?", f"In which year was {name} born?"],
        "job": [f"What was {name}'s profession?"],
        "spouse": [f"Who did {name} marry?"],
    }
    kind_s = p.pick(list(facts))
    kind_q = kind_s if p.coin() else p.pick([k for k in questions if k != kind_s])
    return {"sentence": facts[kind_s], "question": p.pick(questions[kind_q]), "label": 0 if kind_s == kind_q else 1}


# ----------------------------------------------------------------------------- Commonsense
def copa(spec: TaskSpec, p: Picker) -> Example:
    i = p.idx(len(L.CAUSAL))
    premise, cause, effect = L.CAUSAL[i]
    q = p.pick(["cause", "effect"])
    other = L.CAUSAL[(i + 1 + p.idx(len(L.CAUSAL) - 1)) % len(L.CAUSAL)]
    right, wrong = (cause, other[1]) if q == "cause" else (effect, other[2])
    return {"premise": premise, "question": q, **_choices(p, right, [wrong])}


def hellaswag(spec: TaskSpec, p: Picker) -> Example:
    i = p.idx(len(L.ACTIVITIES))
    act, where, endings = L.ACTIVITIES[i]
    person = p.pick(L.PEOPLE_DESC)
    pron = "She" if any(w in person for w in ("woman", "girl")) else "He"
    context = f"A {person} is {act} {where}. {pron}"
    others = [L.ACTIVITIES[j] for j in p.sample([j for j in range(len(L.ACTIVITIES)) if j != i], 3)]
    return {"context": context, **_choices(p, p.pick(endings), [p.pick(o[2]) for o in others])}


def story_cloze(spec: TaskSpec, p: Picker) -> Example:
    opening, build, good, bad = p.pick(L.STORIES)
    name = p.pick(L.NAMES)
    went_well = p.coin()
    context = f"{name} {opening} {build} {name} {good if went_well else bad}"
    right = p.pick(L.GOOD_ENDINGS if went_well else L.BAD_ENDINGS).format(n=name)
    wrong = p.pick(L.BAD_ENDINGS if went_well else L.GOOD_ENDINGS).format(n=name)
    return {"context": context, **_choices(p, right, [wrong])}


def piqa(spec: TaskSpec, p: Picker) -> Example:
    i = p.idx(len(L.GOALS))
    goal, right, wrong = L.GOALS[i]
    if p.coin(1, 3):  # sometimes the distractor is a sensible method for another goal
        wrong = L.GOALS[(i + 1 + p.idx(len(L.GOALS) - 1)) % len(L.GOALS)][1]
    who = p.pick(L.NAMES)
    goal_text = p.pick([f"{who} wants to {goal}.", f"How can {who} {goal}?", f"{goal[0].upper() + goal[1:]}."])
    return {"goal": goal_text, **_choices(p, right, [wrong])}


# ----------------------------------------------------------------------------- Closed-book QA
def arc(spec: TaskSpec, p: Picker) -> Example:
    cats = list(L.CATEGORIES)
    cat = p.pick(cats)
    others = [c for c in cats if c != cat]
    if spec.name == "arc_challenge":  # the odd one out: harder, needs all four items
        members = p.sample(L.CATEGORIES[cat], 3)
        odd = p.pick(L.CATEGORIES[p.pick(others)])
        return {"question": f"Three of these are each {_a(cat)}. Which one is not?", **_choices(p, odd, members)}
    right = p.pick(L.CATEGORIES[cat])
    wrong = [p.pick(L.CATEGORIES[c]) for c in p.sample(others, 3)]
    return {"question": f"Which of these is {_a(cat)}?", **_choices(p, right, wrong)}


def cbqa(spec: TaskSpec, p: Picker) -> Example:
    country, capital, continent, language = p.pick(L.COUNTRIES)
    rel = p.idx(3)
    if spec.name == "natural_questions":  # NQ: lower-case search queries
        q = [f"what is the capital city of {country.lower()}", f"what continent is {country.lower()} in",
             f"what language do they speak in {country.lower()}"][rel]
    else:  # TriviaQA: quiz style
        q = [f"Which city is the capital of {country}?", f"On which continent would you find {country}?",
             f"What is the main official language of {country}?"][rel]
    return {"question": q, "answer": [capital, continent, language][rel]}


# ----------------------------------------------------------------------------- Coreference
def dpr(spec: TaskSpec, p: Picker) -> Example:
    frame, cues_a, cues_b = p.pick(L.COREF_FRAMES)
    a, b, pron = _pair(p)
    to_a = p.coin()
    sentence = frame.format(A=a, B=b, p=pron, cue=p.pick(cues_a if to_a else cues_b))
    return {"sentence": sentence, "pronoun": pron, "options": [a, b], "label": 0 if to_a else 1}


def winogrande(spec: TaskSpec, p: Picker) -> Example:
    if p.coin():
        frame, cue_x, cue_y = p.pick(L.SIZE_FRAMES)
        x, y = p.sample(L.THINGS, 2)
        to_x = p.coin()
        sentence = frame.format(X=x, Y=y, cue=cue_x if to_x else cue_y)
    else:
        frame, cues_a, cues_b = p.pick(L.COREF_FRAMES)
        x, y, _ = _pair(p)
        to_x = p.coin()
        sentence = frame.format(A=x, B=y, p="_", cue=p.pick(cues_a if to_x else cues_b))
    return {"sentence": sentence, "options": [x, y], "label": 0 if to_x else 1}


def wsc(spec: TaskSpec, p: Picker) -> Example:
    frame, cues_a, cues_b = p.pick(L.COREF_FRAMES)
    a, b, pron = _pair(p)
    to_a = p.coin()
    text = frame.format(A=a, B=b, p=pron, cue=p.pick(cues_a if to_a else cues_b))
    ask_a = p.coin()
    return {"text": text, "noun": a if ask_a else b, "pronoun": pron, "label": 1 if ask_a == to_a else 0}


# ----------------------------------------------------------------------------- Struct to text
def common_gen(spec: TaskSpec, p: Picker) -> Example:
    subj = p.pick(["dog", "child", "farmer", "cat", "girl", "chef", "boy", "horse"])
    verb = p.pick([("throw", "throws"), ("catch", "catches"), ("carry", "carries"), ("push", "pushes"), ("kick", "kicks")])
    obj = p.pick(["ball", "stick", "box", "bucket", "basket", "rope"])
    place = p.pick(["park", "yard", "field", "kitchen", "street", "barn"])
    concepts = ", ".join(p.shuffled([subj, verb[0], obj, place]))
    return {"concepts": concepts, "answer": f"The {subj} {verb[1]} a {obj} in the {place}."}


def dart(spec: TaskSpec, p: Picker) -> Example:
    name = f"{p.pick(L.NAMES)} {p.pick(L.SURNAMES)}"
    city, team = p.pick(L.CITIES), p.pick(L.TEAMS)
    pos = p.pick(["goalkeeper", "defender", "midfielder", "striker"])
    triples = [(name, "BIRTH_PLACE", city), (name, "CLUB", f"{city} {team}"), (name, "POSITION", pos)]
    k = p.num(2, 3)
    used = triples[:k]
    data = " ; ".join(" | ".join(t) for t in used)
    text = f"{name} was born in {city} and plays for {city} {team}"
    text = text + (f" as a {pos}." if k == 3 else ".")
    return {"data": data, "answer": text}


def e2e_nlg(spec: TaskSpec, p: Picker) -> Example:
    name = f"The {p.pick(['Golden', 'Blue', 'Old', 'Green', 'Red'])} {p.pick(['Fox', 'Mill', 'Anchor', 'Lantern', 'Oak'])}"
    eat, food = p.pick(["restaurant", "coffee shop", "pub"]), p.pick(["Italian", "French", "Chinese", "Indian", "English"])
    price, area = p.pick(["cheap", "moderate", "high"]), p.pick(["riverside", "city centre"])
    family = p.coin()
    data = f"name[{name}], eatType[{eat}], food[{food}], priceRange[{price}], area[{area}], familyFriendly[{'yes' if family else 'no'}]"
    text = (f"{name} is a {price}-priced {food} {eat} in the {area} area. "
            f"It is {'' if family else 'not '}family friendly.")
    return {"data": data, "answer": text}


def web_nlg(spec: TaskSpec, p: Picker) -> Example:
    building = f"{p.pick(['Saint', 'Grand', 'Royal', 'North'])}_{p.pick(['Tower', 'Hall', 'Library', 'Arena'])}"
    city, architect = p.pick(L.CITIES), f"{p.pick(L.NAMES)}_{p.pick(L.SURNAMES)}"
    year = p.num(1850, 2015)
    data = f"{building} | location | {city} ; {building} | architect | {architect} ; {building} | completionYear | {year}"
    b, a = building.replace("_", " "), architect.replace("_", " ")
    return {"data": data, "answer": f"{b} in {city} was designed by {a} and completed in {year}."}


# ----------------------------------------------------------------------------- Translation
def _translate(words: dict[str, str], code: str) -> str:
    i = L.LANGS.index(code)
    adj1, n1, verb, adj2, n2 = (words[k] for k in ("adj1", "n1", "verb", "adj2", "n2"))
    a1, n1t, vt, a2, n2t = L.ADJS_T[adj1][i], L.NOUNS_T[n1][i], L.VERBS_T[verb][i], L.ADJS_T[adj2][i], L.NOUNS_T[n2][i]
    art_s, art_o = L.ARTICLES.get(code, ("", ""))
    np1 = [a1, n1t] if code not in L.ADJ_AFTER_NOUN else [n1t, a1]
    np2 = [a2, n2t] if code not in L.ADJ_AFTER_NOUN else [n2t, a2]
    np1, np2 = [w for w in [art_s, *np1] if w], [w for w in [art_o, *np2] if w]
    words_out = [*np1, *np2, vt] if code in L.VERB_FINAL else [*np1, vt, *np2]
    s = " ".join(words_out)
    return s[0].upper() + s[1:] + "."


def translation(spec: TaskSpec, p: Picker) -> Example:
    w = {"adj1": p.pick(list(L.ADJS_T)), "n1": p.pick(list(L.NOUNS_T)), "verb": p.pick(list(L.VERBS_T)),
         "adj2": p.pick(list(L.ADJS_T)), "n2": p.pick(list(L.NOUNS_T))}
    english = f"The {w['adj1']} {w['n1']} {w['verb']} the {w['adj2']} {w['n2']}."
    return {"sent1": english, "sent2": _translate(w, spec.constants["code"])}


def _plain_sentence(p: Picker) -> str:
    a, b, city, day = p.pick(L.NAMES), p.pick(L.NAMES), p.pick(L.CITIES), p.pick(L.DAYS)
    return p.pick([
        f"{a} met {b} in {city} on {day}.",
        f"On {day} {a} took the train from {city} to {p.pick(L.CITIES)}.",
        f"The {p.pick(L.JOBS)} from {city} called {a} {p.pick(L.SURNAMES)} about the {p.pick(L.OBJECTS)}.",
        f"{a} and {b} visited the {p.pick(['British Museum', 'Louvre', 'Prado', 'Rijksmuseum'])} in {p.pick(['May', 'June', 'October'])}.",
    ])


def true_case(spec: TaskSpec, p: Picker) -> Example:
    text = _plain_sentence(p)
    return {"source": text.lower(), "answer": text}


def word_segment(spec: TaskSpec, p: Picker) -> Example:
    text = _plain_sentence(p)
    return {"source": text.replace(" ", ""), "answer": text}


def fix_punct(spec: TaskSpec, p: Picker) -> Example:
    a, b, c, city = p.pick(L.NAMES), p.pick(L.NAMES), p.pick(L.NAMES), p.pick(L.CITIES)
    text = p.pick([
        f"{a}, {b} and {c} went to {city}, but it rained all day.",
        f"Did {a} really call {b} from {city}?",
        f"\"We're late,\" said {a}. \"Hurry up, {b}!\"",
        f"It's {a}'s turn; {b} already played twice.",
        f"When {a} arrived in {city}, {b} was waiting at the station.",
    ])
    return {"source": re.sub(r"[^\w\s]", "", text), "answer": text}


# ----------------------------------------------------------------------------- Summarization
def news_summary(spec: TaskSpec, p: Picker) -> Example:
    if spec.name == "wiki_lingua_english_en":  # how-to guides: steps in, one-line recap out
        goal, steps = p.pick(L.HOWTO)
        detail = [f"{s}. {p.pick(['Take your time.', 'This is the key step.', 'It only takes a minute.', 'Be careful here.'])}" for s in steps]
        text = f"Want to {goal}? " + " ".join(detail)
        return {"text": text, "answer": f"{steps[0]}, {steps[1].lower()} and {steps[2].lower()}."}
    role, action, headline = p.pick(L.EVENTS)
    name, city, day, n = f"{p.pick(L.NAMES)} {p.pick(L.SURNAMES)}", p.pick(L.CITIES), p.pick(L.DAYS), p.num(2, 90) * 10
    lead = f"The {role} of {city}, {name}, {action} on {day}."
    quote = f"\"This is a good day for {city},\" {name.split()[0]} told reporters."
    crowd = f"About {n} people attended the event."
    filler = p.sample(L.NEWS_FILLER, 3)
    if spec.name == "gigaword":
        return {"text": f"the {role} of {city} , {name.lower()} , {action} on {day.lower()} , officials said .",
                "answer": f"{city.lower()} {role} {headline}"}
    if spec.name == "xsum":
        return {"text": " ".join([filler[0], lead, quote, crowd, filler[1]]),
                "answer": f"{city}'s {role} has {action}."}
    if spec.name == "cnn_dailymail":
        return {"text": " ".join([f"({city.upper()}) --", lead, quote, crowd, *filler]),
                "answer": f"{name} {action} in {city} .\nAbout {n} people attended ."}
    if spec.name == "multi_news":
        doc2 = f"{city} saw its {role} {name} {action} this week. {filler[2]} {crowd}"
        return {"text": f"{lead} {quote} {filler[0]} ||||| {doc2}",
                "answer": f"– The {role} of {city}, {name}, {action} on {day}, and about {n} people came to watch."}
    # newsroom: title-led stories
    return {"text": f"{city.upper()} {headline.upper()}. {lead} {filler[0]} {quote} {crowd}",
            "answer": f"{name} {action} in {city} on {day}."}


def aeslc(spec: TaskSpec, p: Picker) -> Example:
    topic, day = p.pick(L.EMAIL_TOPICS), p.pick(L.DAYS)
    _, body_t, subj_t = p.pick(L.EMAIL_ACTIONS)
    a, b = p.pick(L.NAMES), p.pick(L.NAMES)
    body = f"Hi {a}, {body_t.format(t=topic, d=day)} {p.pick(L.NEWS_FILLER)} Let me know. Thanks, {b}"
    return {"body": body, "answer": subj_t.format(T=topic.capitalize(), d=day)}


def samsum(spec: TaskSpec, p: Picker) -> Example:
    a, b = p.sample(L.NAMES, 2)
    plan, place, day, hour = p.pick(L.CHAT_PLANS), p.pick(L.PLACES), p.pick(L.DAYS), p.num(4, 9)
    accept = p.coin()
    lines = [f"{a}: hey, are you free on {day}?", f"{b}: maybe, why?", f"{a}: want to {plan}? we could meet at {place}"]
    if accept:
        lines += [f"{b}: sure! {hour} pm?", f"{a}: perfect, see you then"]
        summary = f"{a} and {b} will {plan} on {day}. They will meet at {place} at {hour} pm."
    else:
        lines += [f"{b}: sorry, I have to work on {day}", f"{a}: no worries, another time"]
        summary = f"{b} can't {plan} with {a} on {day} because {b} has to work."
    return {"dialogue": "\n".join(lines), "answer": summary}


def ag_news(spec: TaskSpec, p: Picker) -> Example:
    label = p.idx(4)
    titles, texts = L.TOPICS[label]
    fill = {"c": p.pick([c[0] for c in L.COUNTRIES]), "t": f"{p.pick(L.CITIES)} {p.pick(L.TEAMS)}", "o": p.pick(L.ORGS),
            "d": p.pick(L.DAYS), "n": p.num(2, 9)}
    return {"title": p.pick(titles).format(**fill), "text": p.pick(texts).format(**fill), "label": label}


def opinion_movie(spec: TaskSpec, p: Picker) -> Example:
    movie = f"The {p.pick(L.MOVIE_WORDS[0])} {p.pick(L.MOVIE_WORDS[1])}"
    positive = p.coin()
    major, minor = (L.POS_WORDS, L.NEG_WORDS) if positive else (L.NEG_WORDS, L.POS_WORDS)
    words = p.sample(major, 4)
    reviews = [f"A {w} film{p.pick(['.', ', truly.', ' overall.'])}" for w in words]
    reviews.insert(p.idx(5), f"Some scenes felt {p.pick(minor)}.")
    verdict = "worth seeing" if positive else "easy to skip"
    return {"movie": movie, "reviews": "\n".join(f"{i + 1}. {r}" for i, r in enumerate(reviews)),
            "answer": f"{movie} is {words[0]} and {words[1]}, a film {verdict}."}


def opinion_debate(spec: TaskSpec, p: Picker) -> Example:
    policy, reasons = p.pick(L.POLICIES)
    order = p.sample(reasons, p.num(2, 3))
    speaker = f"{p.pick(L.NAMES)} {p.pick(L.SURNAMES)}"
    args = [f"{i + 1}. {r[0].upper() + r[1:]}." for i, r in enumerate(order)]
    args.append(f"{len(args) + 1}. {p.pick(['I urge you to agree', 'The evidence is clear', 'Think of the next generation', 'Our opponents ignore this'])}, says {speaker}.")
    return {"debate": f"This house would {policy}", "arguments": "\n".join(args),
            "answer": f"We should {policy} because {order[0]}."}


# ----------------------------------------------------------------------------- Reading comprehension
def _town_profile(p: Picker) -> tuple[str, dict[str, tuple[str, str]]]:
    town = f"{p.pick(['New', 'Port', 'East', 'Upper', 'Saint'])} {p.pick(['Haven', 'Marlow', 'Brook', 'Falls', 'Ridge'])}"
    year, river, famous, mayor = str(p.num(1200, 1900)), p.pick(L.RIVERS), p.pick(L.FAMOUS_FOR), p.pick(L.NAMES) + " " + p.pick(L.SURNAMES)
    pop = f"{p.num(2, 95) * 1000:,}"
    facts = {
        "founded": (f"{town} was founded in {year}.", year),
        "river": (f"The town lies on the river {river}.", river),
        "famous": (f"It is famous for {famous}.", famous),
        "mayor": (f"Its current mayor is {mayor}.", mayor),
        "pop": (f"About {pop} people live there.", pop),
    }
    return town, facts


_TOWN_Q = {"founded": "When was {t} founded?", "river": "Which river does {t} lie on?",
           "famous": "What is {t} famous for?", "mayor": "Who is the mayor of {t}?",
           "pop": "How many people live in {t}?"}


def squad(spec: TaskSpec, p: Picker) -> Example:
    town, facts = _town_profile(p)
    keys = p.sample(list(facts), 4)
    context = " ".join(facts[k][0] for k in keys)
    if spec.name == "squad_v2" and p.coin(1, 3):  # unanswerable: asks about the fact left out
        missing = next(k for k in facts if k not in keys)
        return {"title": town, "context": context, "question": _TOWN_Q[missing].format(t=town), "answer": "unanswerable"}
    k = p.pick(keys)
    return {"title": town, "context": context, "question": _TOWN_Q[k].format(t=town), "answer": facts[k][1]}


def drop(spec: TaskSpec, p: Picker) -> Example:
    t1, t2 = p.sample(L.TEAMS, 2)
    a, b, c = p.num(2, 6), p.num(0, 2), p.num(1, 4)
    context = (f"The {t1} scored {a} touchdowns in the first half and {b} in the second half. "
               f"The {t2} answered with {c} field goals, and their kicker missed one more attempt.")
    q = p.idx(3)
    if q == 0:
        return {"context": context, "question": f"How many touchdowns did the {t1} score in total?", "answer": str(a + b)}
    if q == 1:
        return {"context": context, "question": f"How many more touchdowns did the {t1} score in the first half than in the second?", "answer": str(a - b)}
    return {"context": context, "question": "Which team kicked field goals?", "answer": t2}


def boolq(spec: TaskSpec, p: Picker) -> Example:
    animal, cls, habitat, food = p.pick(L.ANIMALS)
    passage = (f"{animal.capitalize()} are {cls} that usually live in {habitat}. Most of their diet is {food}. "
               f"A survey near {p.pick(L.CITIES)} counted {p.num(12, 950)} of them in {p.num(1990, 2020)}.")
    truth = p.coin()
    other = p.pick([x for x in L.ANIMALS if x[0] != animal])
    kind = p.idx(3)
    value = [(habitat, other[2]), (food, other[3]), (cls, other[1])][kind][0 if truth else 1]
    if not truth and value == [habitat, food, cls][kind]:
        truth = True  # the other animal happens to share this fact
    q = [f"do {animal} live in {value}", f"do {animal} eat {value}", f"are {animal} {value}"][kind]
    return {"passage": passage, "question": q, "label": 1 if truth else 0}


def multirc(spec: TaskSpec, p: Picker) -> Example:
    a, b = p.sample(L.NAMES, 2)
    ca, cb_ = p.sample(L.CITIES, 2)
    ja, jb = p.sample(L.JOBS, 2)
    paragraph = (f"{a} and {b} grew up on the same street. After school, {a} moved to {ca} to become a {ja}. "
                 f"{b} stayed home for a while and later trained as a {jb} in {cb_}.")
    if p.coin():
        question, right, wrong = f"Where did {a} move after school?", ca, cb_
    else:
        question, right, wrong = f"What did {b} train as?", jb, ja
    correct = p.coin()
    return {"paragraph": paragraph, "question": question, "response": right if correct else wrong, "label": 1 if correct else 0}


def openbookqa(spec: TaskSpec, p: Picker) -> Example:
    fact, question, members, non = p.pick(L.OBQA_FACTS)
    return {"fact": fact, "question": question, **_choices(p, p.pick(members), p.sample(non, 3))}


# ----------------------------------------------------------------------------- Sentiment
def sentiment(spec: TaskSpec, p: Picker) -> Example:
    kind = spec.constants["kind"]
    label = p.idx(2)
    words = L.POS_WORDS if label == 1 else L.NEG_WORDS
    frames = L.SENT_FRAMES[kind]
    n = {"movie review": 3, "Yelp review": 3, "tweet": 1, "movie review snippet": 1}[kind]
    parts = [f.format(w=p.pick(words), w2=p.pick(words), user=p.pick(L.NAMES).lower(), tag=p.pick(L.TAGS))
             for f in p.sample(frames, n)]
    return {"text": " ".join(parts), "label": label}


# ----------------------------------------------------------------------------- Paraphrase
def paraphrase(spec: TaskSpec, p: Picker) -> Example:
    org, day, n = p.pick(L.ORGS), p.pick(L.DAYS), p.num(2, 40)
    s1 = f"{org} said on {day} that its profits rose {n} percent."
    same = p.coin()
    if same:
        s2 = p.pick([f"Profits at {org} increased by {n} percent, the company said {day}.",
                     f"On {day}, {org} reported a {n} percent rise in profits."])
    else:
        change = p.idx(3)
        n2 = n + p.num(1, 9)
        s2 = [f"{org} said on {day} that its profits rose {n2} percent.",
              f"{p.pick([o for o in L.ORGS if o != org])} said on {day} that its profits rose {n} percent.",
              f"{org} said on {day} that its profits fell {n} percent."][change]
    return {"sentence1": s1, "sentence2": s2, "label": 1 if same else 0}


def qqp(spec: TaskSpec, p: Picker) -> Example:
    skills = ["Python", "guitar", "chess", "Spanish", "swimming", "painting", "cooking", "piano", "French",
              "photography", "calculus", "knitting", "drawing", "juggling", "typing", "baking", "Java", "yoga"]
    s = p.pick(skills)
    q1 = p.pick([f"How can I learn {s} quickly?", f"What is the best way to get good at {s}?",
                 f"How do beginners learn {s}?", f"Any tips for learning {s} fast?"])
    same = p.coin()
    if same:
        q2 = p.pick([f"What is the fastest way to learn {s}?", f"How do I become good at {s} fast?",
                     f"How can I quickly improve at {s}?", f"What helps a beginner pick up {s} quickly?"])
    else:
        q2 = p.pick([f"What is the fastest way to learn {p.pick([x for x in skills if x != s])}?",
                     f"Why is {s} so popular?", f"How much does a {s} course cost?"])
    return {"sentence1": q1, "sentence2": q2, "label": 1 if same else 0}


def paws(spec: TaskSpec, p: Picker) -> Example:
    a = f"{p.pick(L.NAMES)} {p.pick(L.SURNAMES)}"
    x, y = p.sample(L.CITIES, 2)
    year = p.num(1950, 2010)
    s1 = f"{a} moved from {x} to {y} in {year}."
    same = p.coin()
    s2 = f"In {year}, {a} moved from {x} to {y}." if same else p.pick(
        [f"{a} moved from {y} to {x} in {year}.", f"In {year}, {a} moved from {y} to {x}."])
    return {"sentence1": s1, "sentence2": s2, "label": 1 if same else 0}


def stsb(spec: TaskSpec, p: Picker) -> Example:
    subj, (past, _), obj, city = p.pick(L.NAMES), p.pick(L.VERBS), p.pick(L.OBJECTS), p.pick(L.CITIES)
    s1 = f"{subj} {past} the {obj} in {city}."
    score = p.idx(6)
    other_v = p.pick([v for v in L.VERBS if v[0] != past])[0]
    other_o = p.pick([o for o in L.OBJECTS if o != obj])
    s2 = [
        f"The {p.pick(L.COLORS)} bus to {p.pick([c for c in L.CITIES if c != city])} was late again.",  # 0 unrelated
        f"A {obj} was on sale somewhere else.",  # 1 shares a word
        f"{subj} {other_v} a {other_o}.",  # 2 same person only
        f"{subj} {other_v} the {obj} in {city}.",  # 3 same object, different action
        f"{subj} {past} the {obj}.",  # 4 drops a detail
        f"In {city}, the {obj} was {past} by {subj}.",  # 5 paraphrase
    ][score]
    return {"sentence1": s1, "sentence2": s2, "label": score}


# ----------------------------------------------------------------------------- Reading comp. w/ commonsense
def cosmos(spec: TaskSpec, p: Picker) -> Example:
    i = p.idx(len(L.LIFE_EVENTS))
    event, feeling, action = L.LIFE_EVENTS[i]
    name = p.pick(L.NAMES)
    context = f"Last {p.pick(L.DAYS)}, {name} {event}. It was {p.pick(['late', 'early', 'noon', 'raining'])} at the time."
    others = [L.LIFE_EVENTS[j] for j in p.sample([j for j in range(len(L.LIFE_EVENTS)) if j != i], 3)]
    if p.coin():
        return {"context": context, "question": f"How did {name} probably feel?", **_choices(p, feeling, [o[1] for o in others])}
    return {"context": context, "question": f"What will {name} most likely do next?", **_choices(p, action, [o[2] for o in others])}


def record(spec: TaskSpec, p: Picker) -> Example:
    p1, p2 = (f"{n} {p.pick(L.SURNAMES)}" for n in p.sample(L.NAMES, 2))
    org, city, thing = p.pick(L.ORGS), p.pick(L.CITIES), p.pick(["factory", "research centre", "training scheme", "charity fund"])
    passage = (f"{p1}, the head of {org}, met {p2} in {city} on {p.pick(L.DAYS)}. {p1} announced a new {thing} "
               f"during the visit. {p2} praised the plan and promised support.")
    entities = [p1, p2, org, city]
    kind = p.idx(3)
    query, answer = [(f"___ announced a new {thing} in {city}.", p1),
                     ("The plan was praised by ___.", p2),
                     (f"The new {thing} will be run by ___.", org)][kind]
    order = p.shuffled(entities)
    return {"passage": passage, "query": query, "options": order, "label": order.index(answer)}


# ----------------------------------------------------------------------------- Unseen
def coqa(spec: TaskSpec, p: Picker) -> Example:
    animal, _cls, habitat, food = p.pick(L.ANIMALS)
    pet = p.pick(L.NAMES)
    owner = p.pick(L.NAMES)
    color = p.pick(L.COLORS)
    story = (f"Once there was a little {animal.removesuffix('s')} called {pet}. "
             f"{pet} lived in {habitat} with a friend named {owner}. Every day {pet} ate {food}, "
             f"and on sundays {pet} wore a {color} ribbon.")
    qa = p.sample([(f"What was the {animal[:-1]} called?", pet), ("Where did it live?", habitat),
                   ("What did it eat?", food), ("Who was its friend?", owner), ("What color was the ribbon?", color)], 3)
    return {"story": story, "questions": "\n".join(f"{i + 1}. {q}" for i, (q, _) in enumerate(qa)),
            "answer": "\n".join(f"{i + 1}. {a}" for i, (_, a) in enumerate(qa))}


def quac(spec: TaskSpec, p: Picker) -> Example:
    name = f"{p.pick(L.NAMES)} {p.pick(L.SURNAMES)}"
    job, city = p.pick(L.JOBS), p.pick(L.CITIES)
    y1, y2 = p.num(1960, 1985), p.num(1986, 2010)
    album = f"{p.pick(L.MOVIE_WORDS[0])} {p.pick(L.MOVIE_WORDS[1])}"
    context = (f"In {y1}, {name.split()[0]} moved to {city} and started a band. "
               f"The band released its first album, {album}, in {y2}.")
    q = p.idx(3)
    question, answer = [(f"When did {name.split()[0]} move to {city}?", f"In {y1}"),
                        ("What was the first album?", album),
                        (f"Did {name.split()[0]} ever win an award?", "CANNOTANSWER")][q]
    return {"title": name, "background": f"{name} is a musician who also worked as {_a(job)}.",
            "context": context, "question": question, "answer": answer}


def wic(spec: TaskSpec, p: Picker) -> Example:
    word = p.pick(list(L.SENSES))
    senses = L.SENSES[word]
    s1 = p.idx(2)
    same = p.coin()
    s2 = s1 if same else 1 - s1
    a = p.pick(senses[s1])
    b = p.pick([x for x in senses[s2] if x != a] or senses[s2])
    return {"word": word, "sentence1": a, "sentence2": b, "label": 1 if same else 0}


def trec(spec: TaskSpec, p: Picker) -> Example:
    label = p.idx(6)
    c, c2 = p.sample([x[0] for x in L.COUNTRIES], 2)
    q = p.pick(L.TREC_FRAMES[label]).format(x=p.pick(L.TREC_X), ab=p.pick(L.ABBREVS), job=p.pick(L.JOBS),
                                            c=c, c2=c2, k=p.pick([x[0] for x in L.COUNTRIES]))
    return {"question": q, "label": label}


def cola(spec: TaskSpec, p: Picker) -> Example:
    subj = p.pick(L.COLA_SUBJ)
    verb = p.pick(L.COLA_VERB)
    obj = p.pick(L.COLA_OBJ)
    plural = p.coin()
    good = f"{(subj[1] if plural else subj[0]).capitalize()} {verb[1] if plural else verb[0]} {obj}."
    if p.coin():
        return {"sentence": good, "label": 1}
    kind = p.idx(3)
    if kind == 0:  # agreement error
        bad = f"{(subj[1] if plural else subj[0]).capitalize()} {verb[0] if plural else verb[1]} {obj}."
    elif kind == 1:  # object before verb
        bad = f"{(subj[1] if plural else subj[0]).capitalize()} {obj} {verb[1] if plural else verb[0]}."
    else:  # doubled determiner
        bad = f"{(subj[1] if plural else subj[0]).capitalize()} {verb[1] if plural else verb[0]} the {obj}."
    return {"sentence": bad, "label": 0}


def math(spec: TaskSpec, p: Picker) -> Example:
    x, a, b = p.num(-12, 12), p.num(2, 9), p.num(-20, 20)
    c = a * x + b
    var = p.pick(["x", "y", "n", "k"])
    q = p.pick([f"Solve {a}*{var} + {b} = {c} for {var}.", f"Solve {c} = {a}*{var} + {b} for {var}.",
                f"Solve {a}*{var} - {c} = {-b} for {var}."]).replace("+ -", "- ").replace("- -", "+ ")
    return {"question": q, "answer": str(x)}


GENERATORS: dict[str, Callable[[TaskSpec, Picker], Example]] = {
    f.__name__: f for f in [
        nli, wnli, qnli, copa, hellaswag, story_cloze, piqa, arc, cbqa, dpr, winogrande, wsc,
        common_gen, dart, e2e_nlg, web_nlg, translation, true_case, word_segment, fix_punct,
        news_summary, aeslc, samsum, ag_news, opinion_movie, opinion_debate, squad, drop, boolq,
        multirc, openbookqa, sentiment, paraphrase, qqp, paws, stsb, cosmos, record, coqa, quac,
        wic, trec, cola, math,
    ]
}
