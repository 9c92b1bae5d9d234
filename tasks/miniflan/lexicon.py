"""Word lists and small fact tables for the offline mini-Flan. Pure data."""

from __future__ import annotations

FEMALE = ["Anna", "Maria", "Sofia", "Emma", "Laura", "Nina", "Clara", "Julia", "Olivia", "Rosa",
          "Lena", "Mia", "Alice", "Grace", "Ella", "Hannah", "Ruth", "Irene", "Vera", "Paula"]
MALE = ["Ben", "David", "Tom", "Lucas", "Peter", "Omar", "Jonas", "Mark", "Felix", "Hugo",
        "Ivan", "Leo", "Max", "Noah", "Oscar", "Paul", "Sam", "Victor", "Adam", "Carl"]
NAMES = FEMALE + MALE
SURNAMES = ["Keller", "Moreau", "Novak", "Silva", "Berg", "Costa", "Larsen", "Fischer", "Romano",
            "Walsh", "Ortiz", "Lindqvist", "Petrov", "Haas", "Dumont", "Brandt"]
CITIES = ["Lisbon", "Oslo", "Vienna", "Prague", "Dublin", "Porto", "Lyon", "Munich", "Krakow",
          "Seville", "Bergen", "Graz", "Turin", "Ghent", "Malmo", "Leeds"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
TIMES = ["in the morning", "last week", "on Sunday", "after lunch", "in the evening", "yesterday"]
JOBS = ["teacher", "nurse", "pilot", "baker", "lawyer", "engineer", "farmer", "painter", "chef"]
COLORS = ["red", "blue", "green", "yellow", "black", "white"]

# (past, base) verb pairs and objects for NLI-style event sentences.
VERBS = [("painted", "paint"), ("repaired", "repair"), ("sold", "sell"), ("bought", "buy"),
         ("cleaned", "clean"), ("moved", "move"), ("borrowed", "borrow"), ("found", "find"),
         ("built", "build"), ("washed", "wash")]
OBJECTS = ["fence", "bicycle", "boat", "piano", "car", "table", "lamp", "garden shed", "kite", "clock"]
NLI_ADJ = ["old", "small", "heavy", "broken", "wooden", "bright", "antique", "dusty"]
NLI_EXTRA = ["to earn some money", "for the first time", "as a birthday present", "because of a bet",
             "with help from a neighbour", "while it was snowing"]
NEGATIONS = ["did not {base}", "never {past}", "refused to {base}"]

POS_WORDS = ["wonderful", "delightful", "excellent", "brilliant", "charming", "superb", "lovely",
             "fantastic", "moving", "enjoyable"]
NEG_WORDS = ["terrible", "boring", "awful", "dull", "disappointing", "dreadful", "clumsy",
             "tedious", "weak", "annoying"]

# Coreference frames: (sentence with {A} {B} {p} {cue}, cues pointing to A, cues pointing to B).
COREF_FRAMES = [
    ("{A} gave {B} some money because {p} was {cue}.", ["generous", "rich", "kind"], ["poor", "broke", "in need"]),
    ("{A} beat {B} at chess because {p} was {cue}.", ["clever", "skilled", "focused"], ["distracted", "tired", "careless"]),
    ("{A} apologized to {B} because {p} had been {cue}.", ["rude", "late", "unfair"], ["hurt", "offended", "upset"]),
    ("{A} visited {B} in hospital because {p} was {cue}.", ["worried", "caring", "loyal"], ["sick", "injured", "ill"]),
    ("{A} thanked {B} because {p} was {cue}.", ["grateful", "relieved", "polite"], ["helpful", "patient", "supportive"]),
    ("{A} could not lift {B} because {p} was {cue}.", ["weak", "exhausted", "frail"], ["heavy", "large", "strong"]),
]
# Winograd-style object frames: (sentence with {X} {Y} _, word for X, word for Y).
SIZE_FRAMES = [
    ("The {X} did not fit into the {Y} because the _ was too {cue}.", "big", "small"),
    ("The {X} fell through the {Y} because the _ was too {cue}.", "narrow", "wide"),
    ("The {X} could not carry the {Y} because the _ was too {cue}.", "weak", "heavy"),
]
THINGS = ["trophy", "suitcase", "box", "bag", "table", "door", "ball", "bottle", "basket", "drawer",
          "chair", "window"]

# COPA: (premise, cause, effect)
CAUSAL = [
    ("The street was flooded.", "It had rained all night.", "Cars could not drive through."),
    ("The girl felt sick.", "She ate too much candy.", "She stayed home from school."),
    ("The man lost his keys.", "He had a hole in his pocket.", "He could not open his door."),
    ("The ice cream melted.", "It was left in the sun.", "It dripped onto the table."),
    ("The crowd cheered.", "The team scored a goal.", "The players waved back."),
    ("The plant died.", "Nobody watered it.", "Its leaves turned brown."),
    ("The lights went out.", "A storm hit the power lines.", "The family lit candles."),
    ("The baby cried.", "She was hungry.", "Her mother picked her up."),
    ("The student passed the exam.", "He studied every evening.", "His parents were proud."),
    ("The window shattered.", "A ball hit it.", "Glass covered the floor."),
    ("The bread was stale.", "It was left out for days.", "Nobody wanted to eat it."),
    ("The road was closed.", "Workers were repairing it.", "Drivers took a detour."),
    ("The dog barked.", "A stranger knocked on the door.", "The neighbours woke up."),
    ("The runner was exhausted.", "She finished a marathon.", "She slept for ten hours."),
    ("The shop was crowded.", "It was having a big sale.", "The queue reached the street."),
    ("The milk smelled sour.", "It was past its date.", "He poured it away."),
    ("The phone died.", "Its battery was empty.", "She could not call home."),
    ("The lake froze.", "The winter was very cold.", "Children skated on it."),
    ("The concert was cancelled.", "The singer was ill.", "Fans asked for refunds."),
    ("The car would not start.", "The tank was empty.", "He walked to work."),
]

# HellaSwag: (activity, setting, fitting endings)
ACTIVITIES = [
    ("washing a car", "in a driveway", ["rinses the soap off with a hose.", "scrubs the wheels with a sponge."]),
    ("baking a cake", "in a kitchen", ["pours the batter into a tin.", "cracks two eggs into the bowl."]),
    ("painting a wall", "in a living room", ["dips the roller into the paint.", "covers the floor with a sheet."]),
    ("playing the violin", "on a stage", ["draws the bow across the strings.", "tunes the instrument carefully."]),
    ("planting flowers", "in a garden", ["digs a small hole with a trowel.", "waters the new seedlings."]),
    ("shoveling snow", "outside a house", ["throws the snow onto a pile.", "clears a path to the door."]),
    ("tying a tie", "in front of a mirror", ["loops the wide end over the narrow end.", "tightens the knot at the collar."]),
    ("lifting weights", "in a gym", ["raises the barbell above the head.", "puts the weights back on the rack."]),
    ("surfing", "at the beach", ["paddles out toward a wave.", "stands up on the board."]),
    ("knitting a scarf", "on a sofa", ["wraps the yarn around the needle.", "counts the stitches in the row."]),
    ("changing a tire", "on the roadside", ["loosens the bolts with a wrench.", "jacks up the car."]),
    ("brushing a horse", "in a stable", ["runs the brush along its back.", "combs the tangles out of its mane."]),
]
PEOPLE_DESC = ["man", "woman", "young boy", "teenage girl", "older man", "young woman"]

# Story cloze: (opening, build-up, good turn, bad turn)
STORIES = [
    ("had practiced the piano for weeks.", "The recital was finally on Saturday.", "played every note perfectly.", "forgot the middle of the piece."),
    ("entered a baking contest.", "The judges tasted every cake.", "won the first prize.", "was told the cake was burnt."),
    ("trained hard for the school race.", "The whistle blew at noon.", "crossed the finish line first.", "tripped and fell near the start."),
    ("applied for a job at a bank.", "The interview was on Monday.", "got a call with a job offer.", "never heard back from them."),
    ("planted tomatoes in spring.", "Summer came and the plants grew.", "picked a huge basket of tomatoes.", "found that pests ate every fruit."),
    ("saved money for a new bike.", "The shop had one left on Friday.", "rode the new bike home.", "saw someone else buy it."),
    ("studied late for a maths test.", "The test was on Thursday.", "got the highest mark in class.", "failed the test anyway."),
    ("wrote a story for a magazine.", "The editor read it in a week.", "saw the story published.", "received a rejection letter."),
]
GOOD_ENDINGS = ["{n} felt proud and happy.", "{n} celebrated with friends.", "{n} smiled all evening."]
BAD_ENDINGS = ["{n} felt sad and disappointed.", "{n} went home upset.", "{n} cried that night."]

# PIQA: (goal, working solution, failing solution)
GOALS = [
    ("keep bread fresh", "Store it in a sealed bag.", "Leave it open on a sunny windowsill."),
    ("dry wet shoes", "Stuff them with newspaper overnight.", "Fill them with cold water."),
    ("open a tight jar lid", "Run the lid under hot water, then twist.", "Put the jar in the freezer and shake it."),
    ("cool a hot drink quickly", "Pour it into a wide cold glass.", "Wrap the cup in a wool blanket."),
    ("remove a splinter", "Use clean tweezers to pull it out.", "Push it deeper with your thumb."),
    ("stop a door from squeaking", "Put a few drops of oil on the hinges.", "Paint the door a new colour."),
    ("clean a dirty pan", "Soak it in warm soapy water.", "Rub it with dry sand and butter."),
    ("keep ice cream from melting", "Keep it in the freezer.", "Keep it next to the oven."),
    ("make tea", "Pour boiling water over a tea bag.", "Put a tea bag in a cold oven."),
    ("find a lost phone in the house", "Call it from another phone and listen.", "Turn off all the lights and wait."),
    ("hang a picture", "Hammer a nail into the wall and hang it.", "Glue it to the ceiling with honey."),
    ("light a candle", "Hold a burning match to the wick.", "Pour water onto the wick."),
]

# Closed-book facts: (country, capital, continent, language)
COUNTRIES = [
    ("France", "Paris", "Europe", "French"), ("Japan", "Tokyo", "Asia", "Japanese"),
    ("Kenya", "Nairobi", "Africa", "Swahili"), ("Peru", "Lima", "South America", "Spanish"),
    ("Canada", "Ottawa", "North America", "English"), ("Egypt", "Cairo", "Africa", "Arabic"),
    ("Norway", "Oslo", "Europe", "Norwegian"), ("India", "New Delhi", "Asia", "Hindi"),
    ("Brazil", "Brasilia", "South America", "Portuguese"), ("Poland", "Warsaw", "Europe", "Polish"),
    ("Vietnam", "Hanoi", "Asia", "Vietnamese"), ("Chile", "Santiago", "South America", "Spanish"),
    ("Greece", "Athens", "Europe", "Greek"), ("Ghana", "Accra", "Africa", "English"),
    ("Turkey", "Ankara", "Asia", "Turkish"), ("Mexico", "Mexico City", "North America", "Spanish"),
    ("Sweden", "Stockholm", "Europe", "Swedish"), ("Thailand", "Bangkok", "Asia", "Thai"),
    ("Morocco", "Rabat", "Africa", "Arabic"), ("Australia", "Canberra", "Oceania", "English"),
    ("Finland", "Helsinki", "Europe", "Finnish"), ("Argentina", "Buenos Aires", "South America", "Spanish"),
    ("Portugal", "Lisbon", "Europe", "Portuguese"), ("Iran", "Tehran", "Asia", "Persian"),
]

# ARC: category -> members
CATEGORIES = {
    "mammal": ["whale", "bat", "dolphin", "horse", "rabbit", "elephant"],
    "bird": ["eagle", "penguin", "sparrow", "owl", "parrot", "ostrich"],
    "metal": ["iron", "copper", "gold", "aluminum", "silver", "zinc"],
    "planet": ["Mars", "Venus", "Jupiter", "Saturn", "Mercury", "Neptune"],
    "gas at room temperature": ["oxygen", "helium", "nitrogen", "carbon dioxide", "neon", "hydrogen"],
    "renewable energy source": ["wind", "sunlight", "flowing water", "geothermal heat", "tides", "biomass"],
    "insect": ["ant", "bee", "beetle", "butterfly", "grasshopper", "mosquito"],
    "part of a plant": ["root", "stem", "leaf", "petal", "seed", "pollen"],
}

# OpenBookQA: (fact, question, members, non-members)
OBQA_FACTS = [
    ("Metals conduct electricity.", "Which of these would let electricity flow through it?",
     ["a copper wire", "an iron nail", "a steel spoon"], ["a wooden stick", "a rubber band", "a glass cup", "a paper bag"]),
    ("Plants need sunlight to grow.", "Which plant will most likely grow best?",
     ["a plant on a sunny windowsill", "a plant in an open field"], ["a plant in a dark closet", "a plant in a sealed box", "a plant under a bucket"]),
    ("Magnets attract iron.", "Which object would a magnet pick up?",
     ["a paper clip", "an iron nail", "a steel pin"], ["a plastic button", "a cotton ball", "a glass bead", "a pencil eraser"]),
    ("Heat makes ice melt.", "What would make an ice cube turn to water fastest?",
     ["holding it in a warm hand", "placing it near a stove"], ["putting it in a freezer", "keeping it in snow", "storing it in a cold box"]),
    ("Animals with fur stay warm in cold places.", "Which animal is best suited to the Arctic?",
     ["a polar bear", "an arctic fox"], ["a lizard", "a frog", "a snake", "a goldfish"]),
    ("Sound travels through vibrations.", "What is needed for a drum to make noise?",
     ["the skin of the drum vibrating", "a stick making the surface vibrate"], ["the drum being painted", "the drum staying still", "the drum being cold"]),
    ("Seeds grow into new plants.", "What can a farmer plant to grow new corn?",
     ["corn seeds", "kernels of corn"], ["corn husks", "cooked popcorn", "corn flour", "a corn picture"]),
    ("The moon reflects light from the sun.", "Why can people see the moon at night?",
     ["sunlight bounces off it", "it reflects the sun's light"], ["it makes its own fire", "it is covered in lamps", "it is very hot"]),
]

# Sentiment frames per kind; {w} is a polarity word, {w2} another.
SENT_FRAMES = {
    "movie review": ["I watched this film last night and it was {w}.", "The acting was {w} and the story felt {w2}.",
                     "Overall a {w} movie from start to finish.", "The soundtrack was {w} too."],
    "tweet": ["@{user} just had the most {w} day #{tag}", "ugh... my morning was {w} lol @{user}",
              "this weather is {w} today #{tag}", "so {w}!! cant wait to tell @{user}"],
    "movie review snippet": ["a {w} , {w2} piece of filmmaking", "{w} from beginning to end",
                             "the most {w} comedy of the year", "an often {w} and {w2} ride"],
    "Yelp review": ["The food at this place was {w}.", "Our waiter was {w} and the prices felt {w2}.",
                    "I would call the whole visit {w}.", "Dessert was {w} as well."],
}
TAGS = ["monday", "life", "weekend", "coffee", "work", "summer"]

# AG News topic vocabularies: option index -> (title frames, text frames)
TOPICS = {
    0: (["{c} election sparks protests", "Leaders meet in {c} over border dispute", "{c} signs peace treaty"],
        ["The president of {c} spoke to parliament about the new treaty on {d}.", "Ministers in {c} discussed the election and refugee aid for {n} hours."]),
    1: (["{t} win championship final", "{t} coach praises young striker", "{t} stun rivals in overtime"],
        ["The {t} scored {n} goals in the second half to win the match on {d}.", "The {t} coach said the season is far from over after {n} games."]),
    2: (["{o} shares jump after profit report", "{o} to cut jobs as sales fall", "Investors cheer {o} merger"],
        ["Shares of {o} rose {n} percent on {d} after quarterly profits beat forecasts.", "{o} told investors on {d} that market demand would slow by {n} percent."]),
    3: (["{o} unveils faster computer chip", "Researchers build new satellite sensor", "{o} releases software update"],
        ["Researchers at {o} said on {d} the new chip runs software {n} times as fast.", "The satellite built by {o} will send data over the internet to {n} labs."]),
}
TEAMS = ["Lions", "Falcons", "Rovers", "Giants", "Sharks", "Wolves", "Eagles", "Bears"]
ORGS = ["Acme Corp", "Nordic Steel", "Bluewave", "Orbitel", "Granite Bank", "Helix Labs", "Sunfield"]

# WiC: word -> two senses, each a list of sentence frames
SENSES = {
    "bank": (["We sat on the bank of the river.", "The boat drifted toward the muddy bank."],
             ["She opened an account at the bank.", "The bank approved his loan."]),
    "bat": (["A bat flew out of the cave.", "The bat hunts insects at night."],
            ["He swung the bat and hit the ball.", "She bought a new cricket bat."]),
    "light": (["Turn on the light, please.", "The light from the lamp was warm."],
              ["The box was light enough to carry.", "She packed a light bag for the trip."]),
    "spring": (["Flowers bloom in spring.", "We travel every spring."],
               ["The spring in the mattress broke.", "A metal spring holds the door shut."]),
    "ring": (["She wore a gold ring.", "He lost his wedding ring."],
             ["I heard the phone ring.", "The bells ring at noon."]),
    "pitch": (["The players ran onto the pitch.", "The pitch was wet after the rain."],
              ["The singer hit a high pitch.", "Her voice changed pitch suddenly."]),
    "match": (["He struck a match to light the fire.", "The match burned his fingers."],
              ["Our team won the match.", "The match ended in a draw."]),
    "crane": (["A crane lifted the steel beams.", "The crane stood over the building site."],
              ["A crane waded through the marsh.", "The crane spread its long wings."]),
}

# TREC: class index (registry order) -> question frames
TREC_FRAMES = {
    0: ["What is a {x}?", "Why do {x}s exist?", "How does a {x} work?"],
    1: ["What kind of animal is a {x}?", "What color is a {x}?", "Which instrument is used in a {x}?"],
    2: ["What does {ab} stand for?", "What is the abbreviation {ab} short for?", "What is the full form of {ab}?"],
    3: ["Who invented the {x}?", "Who was the first {job} in {c}?", "Who wrote the book about {x}s?"],
    4: ["How many {x}s are in {c}?", "What year was the {x} invented?", "How far is {c} from {c2}?"],
    5: ["Where is {c} located?", "Where can I find a {x}?", "What city is the capital of {k}?"],
}
ABBREVS = ["NASA", "UN", "DNA", "CPU", "GDP", "BBC", "FIFA", "UNESCO", "NATO", "RAM", "HTML", "WHO",
           "IQ", "UFO", "ATM", "PDF"]
TREC_X = ["telescope", "compass", "bicycle", "volcano", "glacier", "microscope", "parrot", "violin",
          "lighthouse", "windmill", "submarine", "barometer", "canoe", "harp", "geyser", "tortoise"]

# Translation: English word -> {lang code: word}. Toy word-by-word lexicon.
LANGS = ("fr", "de", "cs", "fi", "ro", "ru", "tr", "es")
NOUNS_T = {
    "dog": ("chien", "Hund", "pes", "koira", "câine", "собака", "köpek", "perro"),
    "cat": ("chat", "Katze", "kočka", "kissa", "pisică", "кошка", "kedi", "gato"),
    "child": ("enfant", "Kind", "dítě", "lapsi", "copil", "ребёнок", "çocuk", "niño"),
    "teacher": ("professeur", "Lehrer", "učitel", "opettaja", "profesor", "учитель", "öğretmen", "maestro"),
    "bird": ("oiseau", "Vogel", "pták", "lintu", "pasăre", "птица", "kuş", "pájaro"),
    "farmer": ("fermier", "Bauer", "farmář", "maanviljelijä", "fermier", "фермер", "çiftçi", "granjero"),
    "horse": ("cheval", "Pferd", "kůň", "hevonen", "cal", "лошадь", "at", "caballo"),
    "friend": ("ami", "Freund", "přítel", "ystävä", "prieten", "друг", "arkadaş", "amigo"),
    "doctor": ("médecin", "Arzt", "lékař", "lääkäri", "doctor", "врач", "doktor", "médico"),
    "neighbour": ("voisin", "Nachbar", "soused", "naapuri", "vecin", "сосед", "komşu", "vecino"),
}
VERBS_T = {
    "sees": ("voit", "sieht", "vidí", "näkee", "vede", "видит", "görür", "ve"),
    "finds": ("trouve", "findet", "najde", "löytää", "găsește", "находит", "bulur", "encuentra"),
    "likes": ("aime", "mag", "má rád", "pitää", "place", "любит", "sever", "quiere"),
    "helps": ("aide", "hilft", "pomáhá", "auttaa", "ajută", "помогает", "yardım eder", "ayuda"),
    "follows": ("suit", "folgt", "sleduje", "seuraa", "urmează", "следует", "takip eder", "sigue"),
    "calls": ("appelle", "ruft", "volá", "kutsuu", "cheamă", "зовёт", "çağırır", "llama"),
}
ADJS_T = {
    "small": ("petit", "kleine", "malý", "pieni", "mic", "маленький", "küçük", "pequeño"),
    "big": ("grand", "große", "velký", "iso", "mare", "большой", "büyük", "grande"),
    "old": ("vieux", "alte", "starý", "vanha", "bătrân", "старый", "yaşlı", "viejo"),
    "young": ("jeune", "junge", "mladý", "nuori", "tânăr", "молодой", "genç", "joven"),
    "happy": ("heureux", "glückliche", "šťastný", "iloinen", "fericit", "счастливый", "mutlu", "feliz"),
    "tired": ("fatigué", "müde", "unavený", "väsynyt", "obosit", "усталый", "yorgun", "cansado"),
}
ARTICLES = {"fr": ("le", "le"), "de": ("der", "den"), "es": ("el", "al")}
ADJ_AFTER_NOUN = {"fr", "ro", "es"}
VERB_FINAL = {"tr"}

# Summaries: news events (subject role, action past, action headline, object)
EVENTS = [
    ("mayor", "opened a new bridge", "opens new bridge"),
    ("minister", "announced a tax cut", "announces tax cut"),
    ("police chief", "launched a safety campaign", "launches safety campaign"),
    ("coach", "signed a three-year contract", "signs three-year contract"),
    ("scientist", "discovered a new species of frog", "discovers new frog species"),
    ("company founder", "sold the firm to a rival", "sells firm to rival"),
    ("museum director", "unveiled a lost painting", "unveils lost painting"),
    ("school principal", "banned phones in class", "bans phones in class"),
]
NEWS_FILLER = [
    "The decision followed months of debate.", "Local residents had mixed reactions.",
    "Officials said more details would follow.", "The plan had been delayed twice before.",
    "Critics questioned the cost of the project.", "Supporters called it a historic step.",
    "The weather was cold but dry.", "A spokesperson declined to comment further.",
]
HOWTO = [
    ("grow basil", ["Fill a pot with soil", "plant the seeds a finger deep", "water them every morning"]),
    ("clean a bike chain", ["Shift to the smallest gear", "scrub the chain with degreaser", "apply fresh oil"]),
    ("make pancakes", ["Whisk flour, eggs and milk", "heat a buttered pan", "flip each pancake once"]),
    ("paint a room", ["Move the furniture out", "tape the window frames", "apply two thin coats"]),
    ("train a puppy to sit", ["Hold a treat above its nose", "say sit as it lowers", "reward it right away"]),
    ("pack for a hike", ["Check the weather", "pack water and snacks", "bring a warm layer"]),
]
EMAIL_TOPICS = ["budget meeting", "team lunch", "quarterly report", "contract review", "site visit",
                "training session", "holiday schedule", "client call"]
EMAIL_ACTIONS = [("moved to", "Can we move the {t} to {d}?", "{T} moved to {d}"),
                 ("cancelled", "I am afraid the {t} on {d} is cancelled.", "{T} on {d} cancelled"),
                 ("confirmed", "Just confirming the {t} on {d}.", "{T} confirmed for {d}")]
CHAT_PLANS = ["go to the cinema", "have dinner", "play tennis", "study together", "go for a run",
              "visit the museum"]
PLACES = ["the cafe", "the park", "the station", "the library", "the old bridge", "the mall"]
MOVIE_WORDS = (["Silent", "Golden", "Broken", "Last", "Hidden", "Crimson", "Endless"],
               ["Harbor", "Road", "Garden", "Winter", "Promise", "Mirror", "River"])
POLICIES = [
    ("ban cars from city centres", ["it cuts air pollution", "streets become safer for children", "people walk and cycle more"]),
    ("make voting compulsory", ["results reflect the whole population", "turnout becomes equal across groups", "parties must address every voter"]),
    ("abolish school homework", ["children need time to rest", "homework widens gaps between families", "learning happens best in class"]),
    ("tax sugary drinks", ["it reduces obesity", "the revenue funds health care", "firms reformulate their products"]),
    ("ban zoos", ["animals suffer in captivity", "wild habitats deserve the money", "documentaries teach just as well"]),
]

# Bool Q / CoQA / SQuAD style entity facts.
ANIMALS = [("otters", "mammals", "rivers", "fish"), ("owls", "birds", "forests", "mice"),
           ("camels", "mammals", "deserts", "dry plants"), ("penguins", "birds", "icy coasts", "krill"),
           ("frogs", "amphibians", "ponds", "insects"), ("turtles", "reptiles", "lakes", "weeds"),
           ("goats", "mammals", "mountains", "grass"), ("parrots", "birds", "rainforests", "seeds")]
RIVERS = ["Tarn", "Oder", "Vela", "Mira", "Solna", "Brisk"]
FAMOUS_FOR = ["its glass factories", "a medieval castle", "an annual jazz festival", "its chocolate",
              "a huge stone bridge", "its botanical garden"]

# CoLA grammar pieces
COLA_SUBJ = [("the dog", "the dogs"), ("my sister", "my sisters"), ("the teacher", "the teachers"),
             ("a child", "some children"), ("the farmer", "the farmers")]
COLA_VERB = [("chases", "chase"), ("likes", "like"), ("sees", "see"), ("helps", "help"), ("finds", "find")]
COLA_OBJ = ["the ball", "a cat", "the old man", "her friends", "a small bird", "the red car"]

# Cosmos QA: (event, feeling, next action)
LIFE_EVENTS = [
    ("missed the last bus home", "stressed", "call a taxi"),
    ("got a surprise birthday party", "delighted", "thank the guests"),
    ("failed the driving test", "frustrated", "book another lesson"),
    ("found a stray kitten in the rain", "worried", "take it to a vet"),
    ("won tickets to a concert", "excited", "invite a friend"),
    ("broke a favourite mug", "upset", "sweep up the pieces"),
    ("finished a long project at work", "relieved", "take a day off"),
    ("heard a strange noise downstairs", "scared", "turn on the lights"),
]
