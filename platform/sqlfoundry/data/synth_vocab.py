"""The synthetic generator's own vocabulary: WikiSQL-style table topics, their headings, and values.

A WikiSQL table is a scraped results table: spaced headings ("Pick #", "U.S. viewers (millions)")
become lower snake_case columns by one rule (`column_name`), which gives the odd names real rows
have (`pick__number`, `no_`, `_percentage_of_votes`, `2011_population`). Every name and value here
is made up for the generator (syllable names, invented towns and teams), so no real row leaks in.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Callable

_SYMBOLS = {"#": "_number", "%": "_percentage"}


def column_name(heading: str) -> str:
    """sql-create-context's rule: lower-case, '#' -> '_number', '%' -> '_percentage', and every other
    character that is not a letter or digit -> '_' (so "No." -> "no_", "Pick #" -> "pick__number").
    No heading starts with a digit: sqlite cannot parse such a bare name, and sql-create-context has none."""
    text = "".join(_SYMBOLS.get(ch, ch) for ch in heading.lower())
    return re.sub(r"[^a-z0-9_]", "_", text)


_SYL_FIRST = ("ka", "lo", "mi", "ro", "ta", "ve", "no", "si", "da", "be", "jo", "ar", "el", "fi", "gu", "ha")
_SYL_MID = ("ren", "lin", "mar", "dov", "sel", "tan", "vic", "bor", "quin", "ral", "ber", "nes", "dal")
_SYL_END = ("a", "o", "in", "on", "er", "is", "ez", "ov", "ski", "son", "ton", "ard", "elle", "ius")


def _word(rng: random.Random, parts: int = 2) -> str:
    body = rng.choice(_SYL_FIRST) + "".join(rng.choice(_SYL_MID) for _ in range(parts - 2)) + rng.choice(_SYL_END)
    return body.capitalize()


def _person(rng: random.Random) -> str:
    return f"{_word(rng, 2)} {_word(rng, rng.choice((2, 3)))}"


_NICKNAMES = ("Herons", "Comets", "Rovers", "Lynx", "Mariners", "Pioneers", "Foxes", "Rangers", "Otters",
              "Stallions", "Hornets", "Wanderers", "Titans", "Owls")
_PLACE_SUFFIX = ("ford", "ville", "burg", " Falls", " Harbor", "ton", " Springs", "field", "mouth")
_REGIONS = ("Norland", "Estavia", "Marovia", "Kelland", "Trevania", "Ostrad", "Belmira")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
           "october", "november", "december")


def _place(rng: random.Random) -> str:
    town = _word(rng, 2) + rng.choice(_PLACE_SUFFIX)
    return f"{town}, {rng.choice(_REGIONS)}" if rng.random() < 0.3 else town


def _team(rng: random.Random) -> str:
    return f"{_word(rng, 2)} {rng.choice(_NICKNAMES)}" if rng.random() < 0.6 else _word(rng, 3)


def _date(rng: random.Random) -> str:
    month, day = rng.choice(_MONTHS).capitalize(), rng.randint(1, 28)
    return rng.choice((f"{month} {day}", f"{day} {month} {rng.randint(1961, 2019)}",
                       f"{month} {day}, {rng.randint(1961, 2019)}"))


def _score(rng: random.Random) -> str:
    a, b = rng.randint(0, 40), rng.randint(0, 40)
    return rng.choice((f"{a}-{b}", f"w {a}-{b}", f"l {b}-{a}", f"{a % 8}–{b % 8}",
                       f"{rng.randint(6, 7)}–{rng.randint(0, 5)}, {rng.randint(6, 7)}–{rng.randint(0, 5)}"))


def _record(rng: random.Random) -> str:
    return f"{rng.randint(0, 30)}-{rng.randint(0, 30)}" + (f"-{rng.randint(0, 5)}" if rng.random() < 0.3 else "")


def _ordinal(rng: random.Random) -> str:
    n = rng.randint(1, 24)
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _laptime(rng: random.Random) -> str:
    return rng.choice((f"{rng.randint(1, 2)}:{rng.randint(10, 59)}.{rng.randint(100, 999)}",
                       f"+{rng.randint(1, 9)} laps", f"+{rng.randint(1, 59)}.{rng.randint(1, 9)} secs"))


def _code(rng: random.Random) -> str:
    letters = "".join(rng.choice("ABCDEFGHKMNPRSTVX") for _ in range(rng.randint(2, 3)))
    return f"{letters}-{rng.randint(10, 999)}" if rng.random() < 0.5 else f"{letters} {rng.randint(100, 9999)}"


def _title(rng: random.Random) -> str:
    words = ("Silver", "River", "Night", "Garden", "Echo", "Lantern", "Winter", "Paper", "Stone", "Harbor",
             "Signal", "Orchard", "Mirror", "Velvet", "Compass", "Ember")
    first, second = rng.sample(words, 2)
    return rng.choice((f"The {first} {second}", f"{first} of the {second}", f"{first} {second}"))


def _choice(*options: str) -> Callable[[random.Random], str]:
    return lambda rng: rng.choice(options)


@dataclass(frozen=True)
class Heading:
    text: str  # as the scraped table writes it; the column is column_name(text)
    make: Callable[[random.Random], object]  # one cell value
    numeric: bool = False  # compared with < / > and aggregated with MIN/MAX/AVG/SUM
    who: bool = False  # a person: questions may ask "Who ..."

    @property
    def column(self) -> str:
        return column_name(self.text)


def _int(lo: int, hi: int) -> Callable[[random.Random], int]:
    return lambda rng: rng.randint(lo, hi)


def _dec(lo: float, hi: float) -> Callable[[random.Random], float]:
    return lambda rng: round(rng.uniform(lo, hi), rng.choice((1, 2)))


def H(text, make, numeric=False, who=False) -> Heading:
    return Heading(text, make, numeric, who)


_YEAR = _int(1950, 2022)
_RESULTS = _choice("Won", "Lost", "Nominated", "Draw", "Retired", "Withdrew")

# topic -> the headings a table of that kind may have (a table takes 5-9 of them)
TOPICS: dict[str, tuple[Heading, ...]] = {
    "season": (H("Week", _int(1, 17), True), H("Date", _date), H("Opponent", _team), H("Result", _score),
               H("Attendance", _int(800, 90000), True), H("Record", _record), H("Game site", _place),
               H("Game", _int(1, 82), True), H("Score", _score), H("High points", _person, who=True),
               H("Venue", _place), H("Streak", _choice("Won 3", "Lost 2", "Won 1", "Lost 5"))),
    "draft": (H("Round", _int(1, 12), True), H("Pick #", _int(1, 260), True), H("Player", _person, who=True),
              H("Position", _choice("Guard", "Forward", "Center", "Linebacker", "Wide receiver", "Goalkeeper")),
              H("College", _place), H("Nationality", _choice(*_REGIONS)), H("Overall", _int(1, 300), True),
              H("School/Club Team", _team), H("Height", _choice("6-2", "6-5", "5-11", "7-0")),
              H("Years active", _choice("1999–2001", "2004", "2010–2013")), H("No.", _int(0, 99), True)),
    "episodes": (H("No. in series", _int(1, 180), True), H("No. in season", _int(1, 26), True),
                 H("Title", _title), H("Directed by", _person, who=True), H("Written by", _person, who=True),
                 H("Original air date", _date), H("Production code", _code),
                 H("U.S. viewers (millions)", _dec(0.5, 25.0), True), H("Rank (week)", _int(1, 100), True),
                 H("Series #", _int(1, 180), True)),
    "medals": (H("Rank", _int(1, 30), True), H("Nation", _team), H("Gold", _int(0, 40), True),
               H("Silver", _int(0, 40), True), H("Bronze", _int(0, 40), True), H("Total", _int(0, 100), True),
               H("Games", _int(1, 20), True), H("Athletes", _int(1, 400), True)),
    "election": (H("District", _place), H("Incumbent", _person, who=True),
                 H("Party", _choice("Liberal", "Green", "Labour", "Unity", "Reform", "Independent")),
                 H("First elected", _YEAR, True), H("Result", _RESULTS), H("Candidates", _person, who=True),
                 H("% of votes", _dec(1.0, 80.0), True), H("# of votes", _int(300, 900000), True),
                 H("Seats won", _int(0, 150), True), H("Election", _YEAR, True)),
    "racing": (H("Driver", _person, who=True), H("Constructor", _team), H("Laps", _int(1, 200), True),
               H("Time/Retired", _laptime), H("Grid", _int(1, 30), True), H("Points", _int(0, 400), True),
               H("Pos.", _int(1, 30), True), H("Car #", _int(1, 99), True), H("Winning team", _team),
               H("Circuit", _place), H("Pole position", _person, who=True)),
    "tennis": (H("Outcome", _choice("Winner", "Runner-up")), H("Date", _date), H("Tournament", _place),
               H("Surface", _choice("Clay", "Grass", "Hard", "Carpet (i)", "Hard (i)")),
               H("Opponent in the final", _person, who=True), H("Score in the final", _score),
               H("Partner", _person, who=True), H("Championship", _place), H("Year", _YEAR, True)),
    "chart": (H("Year", _YEAR, True), H("Single", _title), H("Album", _title), H("Artist", _person, who=True),
              H("Peak position", _int(1, 100), True), H("Label", _team), H("Catalog", _code),
              H("Format", _choice("CD", "Vinyl", "Digital download", "Cassette")), H("Draw", _int(1, 26), True),
              H("Place", _ordinal), H("Song", _title)),
    "places": (H("City", _place), H("Country", _choice(*_REGIONS)), H("Population (2011)", _int(900, 4000000), True),
               H("Area (km²)", _dec(1.0, 9000.0), True), H("Density", _dec(1.0, 3000.0), True),
               H("Mayor", _person, who=True), H("Founded", _YEAR, True), H("Region", _choice(*_REGIONS)),
               H("Rank", _int(1, 50), True), H("Elevation (m)", _int(0, 3000), True)),
    "players": (H("Player", _person, who=True), H("Team", _team), H("Games played", _int(1, 82), True),
                H("Goals", _int(0, 60), True), H("Assists", _int(0, 90), True), H("Points", _int(0, 150), True),
                H("Season", _choice("1998–99", "2005–06", "2012–13", "2016–17")), H("League", _team),
                H("Apps", _int(0, 500), True), H("Position", _choice("Defender", "Midfielder", "Striker"))),
    "aircraft": (H("Aircraft", _code), H("Manufacturer", _team), H("Introduced", _YEAR, True),
                 H("In service", _int(0, 300), True), H("Role", _choice("Transport", "Trainer", "Patrol")),
                 H("Origin", _choice(*_REGIONS)), H("Passengers", _int(2, 500), True),
                 H("Version", _code), H("Range (km)", _int(200, 15000), True)),
    "films": (H("Year", _YEAR, True), H("Film", _title), H("Director", _person, who=True),
              H("Role", _choice("Lead", "Supporting", "Cameo", "Narrator")), H("Notes", _choice("Debut", "Uncredited", "Voice")),
              H("Award", _title), H("Category", _choice("Best Actor", "Best Score", "Best Editing")),
              H("Result", _RESULTS), H("Gross", _int(10000, 900000000), True), H("Studio", _team)),
    "schools": (H("School", _team), H("Location", _place), H("Mascot", _choice(*_NICKNAMES)),
                H("Enrollment", _int(100, 40000), True), H("Founded", _YEAR, True),
                H("Type", _choice("Public", "Private", "Charter")), H("Conference", _team),
                H("Division", _choice("A", "AA", "AAA")), H("Joined", _YEAR, True), H("Size", _int(50, 3000), True)),
}
