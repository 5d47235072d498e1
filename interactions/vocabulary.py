"""Built-in greeting and farewell words per language (§4, TRIGGER_LANGUAGES), and the short words
that tell the languages apart in a chat line.

English is not here: its words are GREETING_TRIGGERS / FAREWELL_TRIGGERS, which an operator edits.
Every entry below is a greeting or a farewell in its language and is not ordinary chat in another
of the listed languages; a word that is both was left out (Spanish "ola" is a wave, Portuguese
"falou" is "he said", Russian "здорово" is "great", Portuguese "fui" is "I went"), or is kept only
as a standalone word (below). How each choice was made is in docs/triggers.md.

- `standalone`: words that are a greeting or farewell only when the message is little more than
  the word ("пока" alone or "всем пока" is goodbye, "пока я играю" is "while I play"; "buenas" alone
  is hello, "buenas ideas" is not). They fire when every other word of the message is a trigger
  word, the bot's name or an addressee such as "chat" or "всем" (ADDRESSEES).
- Entries written in scripts without spaces (Japanese, Chinese, and Korean glued to a name) match
  inside a run of text, except those in `word_only` (short loanwords such as 하이, which sits inside
  하이라이트 "highlight"). `not_before` lists what may not follow an in-run match: Chinese 你好 is
  "hello", but 你好看 is "you look good".
- `markers`: frequent short words of the language, used only to tell which language a line is in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LANGUAGE_NAMES = {
    "en": "English", "es": "Spanish", "pt": "Portuguese", "fr": "French", "de": "German",
    "it": "Italian", "ru": "Russian", "ja": "Japanese", "ko": "Korean", "zh": "Chinese",
}


@dataclass(frozen=True)
class Vocabulary:
    greetings: tuple[str, ...]
    farewells: tuple[str, ...]
    standalone: frozenset[str] = frozenset()
    word_only: frozenset[str] = frozenset()
    not_before: dict[str, str] = field(default_factory=dict)
    markers: frozenset[str] = frozenset()


# Words that may stand beside a standalone greeting without making it ordinary chat.
ADDRESSEES = frozenset({
    "chat", "all", "everyone", "everybody", "guys", "y'all", "folks", "people", "friends",
    "todos", "todas", "gente", "chicos", "amigos", "a", "galera", "pessoal", "povo",
    "tout", "le", "monde", "les", "amis", "à", "leute", "alle", "zusammen", "ihr",
    "ragazzi", "tutti", "amici", "всем", "все", "ребята", "ребят", "народ", "ну", "ладно", "друзья",
    "ок",
})

VOCABULARIES: dict[str, Vocabulary] = {
    "es": Vocabulary(
        greetings=("hola", "holi", "holis", "holaa", "buenas", "buenos días", "buenos dias", "buen día",
                   "buen dia", "buenas tardes", "buenas noches", "saludos", "qué onda", "que onda"),
        farewells=("adiós", "adios", "chao", "chau", "hasta luego", "hasta mañana", "hasta manana",
                   "hasta la próxima", "hasta la proxima", "nos vemos", "me despido"),
        standalone=frozenset({"buenas"}),
        markers=frozenset({
            "el", "los", "las", "que", "qué", "y", "es", "está", "estás", "estas", "eres", "soy", "yo",
            "tú", "cómo", "como", "por", "para", "pero", "muy", "con", "una", "del", "al", "hoy",
            "bien", "gracias", "aquí", "aqui", "hay", "mi", "tu", "qué", "cuál", "cual", "dónde",
            "donde", "juego", "juegas", "jugando", "puedes", "tienes", "vas", "eso", "esto", "ya",
            "también", "tambien", "porque", "porqué", "sí", "nada", "mucho", "ahora", "todos",
        }),
    ),
    "pt": Vocabulary(
        greetings=("olá", "oi", "oie", "oii", "oiee", "eae", "eai", "e aí", "salve", "bom dia",
                   "boa tarde", "boa noite"),
        farewells=("tchau", "tchauzinho", "até logo", "ate logo", "até mais", "ate mais", "até amanhã",
                   "ate amanha", "até a próxima", "ate a proxima", "adeus", "vou nessa", "flw"),
        standalone=frozenset({"salve"}),
        markers=frozenset({
            "você", "voce", "vc", "vcs", "não", "nao", "tá", "tudo", "bem", "muito", "com", "um",
            "uma", "do", "da", "no", "na", "pra", "eu", "aqui", "hoje", "obrigado", "obrigada",
            "é", "que", "de", "o", "os", "as", "isso", "mas", "também", "tambem", "jogo", "jogando",
            "pode", "tem", "como", "sim", "mano", "cara", "galera", "pessoal", "beleza", "está",
            "estou", "agora", "qual", "onde", "quando", "porque", "por",
        }),
    ),
    "fr": Vocabulary(
        greetings=("bonjour", "bonsoir", "salut", "coucou", "slt", "bjr", "bsr", "re-bonjour"),
        farewells=("au revoir", "à plus", "à bientôt", "a bientot", "à demain", "a demain", "bonne nuit",
                   "bonne soirée", "bonne soiree", "tchao", "adieu", "à la prochaine", "a la prochaine"),
        markers=frozenset({
            "le", "la", "les", "des", "et", "est", "je", "tu", "vous", "ça", "ca", "va", "c'est",
            "pas", "pour", "avec", "une", "du", "au", "qui", "quoi", "comment", "bien", "merci",
            "tout", "oui", "non", "mais", "sur", "suis", "es", "on", "ce", "cette", "jeu", "joues",
            "peux", "as", "aussi", "très", "tres", "ici", "j'ai", "t'es", "il", "elle", "nous",
            "y", "a", "mon", "ton", "quel", "quelle", "où", "pourquoi",
        }),
    ),
    "de": Vocabulary(
        greetings=("hallo", "hallöchen", "servus", "moin", "moin moin", "grüß gott", "grüß dich",
                   "grüezi", "guten morgen", "guten tag", "guten abend", "huhu"),
        farewells=("tschüss", "tschüs", "tschö", "auf wiedersehen", "bis später", "bis dann", "bis bald",
                   "bis morgen", "gute nacht", "bis zum nächsten mal"),
        markers=frozenset({
            "der", "die", "das", "und", "ist", "ich", "du", "nicht", "wie", "was", "ein", "eine",
            "mit", "auf", "für", "gehts", "geht's", "geht", "schon", "auch", "heute", "hier", "alle",
            "leute", "danke", "ja", "nein", "mal", "bist", "bin", "spielst", "spiel", "kannst",
            "hast", "wo", "warum", "wann", "noch", "jetzt", "euch", "dir", "mir", "sehr", "gut",
            "zusammen", "ihr", "dem", "den", "von",
        }),
    ),
    "it": Vocabulary(
        greetings=("ciao", "salve", "buongiorno", "buon giorno", "buonasera", "buona sera",
                   "buon pomeriggio", "ehilà", "bella raga"),
        farewells=("arrivederci", "a dopo", "a domani", "buonanotte", "buona notte", "ci vediamo",
                   "alla prossima", "buona serata", "buona giornata"),
        standalone=frozenset({"salve"}),
        markers=frozenset({
            "il", "lo", "gli", "di", "è", "che", "non", "come", "sono", "sei", "un", "una", "per",
            "con", "del", "della", "tutti", "bene", "grazie", "oggi", "anche", "molto", "ragazzi",
            "stai", "va", "cosa", "perché", "perche", "quando", "dove", "giochi", "gioco", "puoi",
            "hai", "ho", "questo", "questa", "qui", "sì", "allora", "ma", "ti", "mi",
        }),
    ),
    "ru": Vocabulary(
        greetings=("привет", "приветик", "приветствую", "всем привет", "здравствуйте", "здравствуй",
                   "здарова", "здрасте", "хай", "добрый день", "доброе утро", "добрый вечер", "ку"),
        farewells=("пока", "пока-пока", "до свидания", "досвидания", "до встречи", "до завтра",
                   "спокойной ночи", "споки", "всем пока", "бай"),
        standalone=frozenset({"пока", "ку"}),
        markers=frozenset({
            "и", "в", "не", "на", "я", "ты", "что", "как", "это", "он", "она", "мы", "вы", "они",
            "у", "с", "по", "да", "нет", "так", "там", "тут", "уже", "еще", "ещё", "дела", "играешь",
            "игра", "можно", "есть", "где", "почему", "когда", "кто", "чем", "тебя", "меня", "спасибо",
        }),
    ),
    "ja": Vocabulary(
        greetings=("こんにちは", "こんにちわ", "こんばんは", "こんばんわ", "おはよう", "おはようございます",
                   "おはよー", "こんちゃ", "こんちわ", "やっほー", "はじめまして", "初見です", "初見さん"),
        farewells=("さようなら", "さよなら", "じゃあね", "またね", "また明日", "おやすみ",
                   "おやすみなさい", "おつかれ", "お疲れ様", "おつかれさま", "お疲れさまでした",
                   "ばいばい", "バイバイ", "落ちます", "おつ", "乙"),
        standalone=frozenset({"おつ", "乙"}),
        word_only=frozenset({"おつ", "乙"}),
    ),
    "ko": Vocabulary(
        greetings=("안녕하세요", "안녕", "안뇽", "하이", "반가워요", "반갑습니다", "반가워", "ㅎㅇ", "방가방가"),
        farewells=("안녕히", "안녕히 가세요", "안녕히가세요", "안녕히 계세요", "안녕히계세요", "안녕히 주무세요",
                   "안녕히주무세요", "잘 가", "잘가",
                   "잘자", "잘 자", "잘자요", "잘 자요", "바이바이", "ㅂㅂ", "ㅃㅇ", "다음에 봐요", "또 봐요"),
        standalone=frozenset({"하이", "ㅎㅇ", "ㅂㅂ", "ㅃㅇ"}),
        word_only=frozenset({"하이", "ㅎㅇ", "ㅂㅂ", "ㅃㅇ", "잘 가", "잘 자", "또 봐요"}),
    ),
    "zh": Vocabulary(
        greetings=("你好", "您好", "大家好", "哈喽", "哈啰", "嗨", "早上好", "早安", "下午好", "晚上好",
                   "主播好"),
        farewells=("再见", "再見", "拜拜", "回见", "回头见", "明天见", "下次见", "晚安", "先走了"),
        standalone=frozenset({"嗨"}),
        word_only=frozenset({"嗨"}),
        not_before={"你好": "看帅美漂棒厉可强牛聪坏笨丑酷菜逗久多像好有会"},
    ),
}

# English short words, for telling an English line from the others (English trigger words are the
# operator's GREETING_TRIGGERS / FAREWELL_TRIGGERS).
ENGLISH_MARKERS = frozenset({
    "the", "and", "is", "are", "you", "i", "it", "to", "what", "how", "this", "that", "my", "your",
    "do", "does", "in", "of", "for", "have", "with", "not", "can", "was", "just", "so", "we", "they",
    "be", "will", "game", "playing", "doing", "going", "there", "here", "everyone", "guys", "today",
    "thanks", "why", "when", "where", "who", "did", "im", "i'm", "you're", "it's", "what's",
})

# Chinese characters that tell Japanese from Chinese in a line without kana: shinjitai forms that
# are neither simplified nor traditional Chinese (気, not 气 or 氣), and simplified-only forms.
JAPANESE_ONLY_HAN = frozenset("気楽広円済駅読払売県図変応労戦歳鉄関様覚戯団発黒悪単実薬続絵険験駆沢桜乙々")
SIMPLIFIED_ONLY_HAN = frozenset("这们个吗说对时还没为样过气乐广变应劳动战岁铁吧呢哦嘛么谁啥东车马鸟语话请谢让给问见觉爱游戏里几开关头")
