"""A deterministic catalogue of realistic demo rooms in real cities of Europe and North America.

Same count and seed, same rooms, on any machine: every draw comes from one `random.Random(seed)`
in a fixed order, and nothing iterates a set. Prices are in the city's currency (EUR in the euro
area, USD in the US, CAD in Canada) and scale with the city and the kind of room.
"""

from __future__ import annotations

import decimal
import random
from typing import NamedTuple

from roombook.domain.rooms import Location, Room

AMENITIES = (
    "wifi", "kitchen", "workspace", "balcony", "air_conditioning", "heating", "washer", "elevator",
    "tv", "parking", "breakfast", "gym", "pool", "pet_friendly",
)  # fmt: skip

IMAGE_URL = "https://images.roombook.example/rooms/{room}/{image}.jpg"


class _City(NamedTuple):
    name: str
    country: str  # ISO 3166-1 alpha-2
    lat: float
    lon: float
    timezone: str  # IANA
    double_room_price: int  # a typical night in a double room, in the local currency
    quarters: tuple[tuple[str, str], ...]  # (neighbourhood, a real street in it)
    landmark: str
    warm: bool  # summers hot enough that air conditioning and pools are common


class _RoomKind(NamedTuple):
    name: str
    noun: str  # what the description calls it
    price_factor: float
    capacity: tuple[int, int]
    amenities: tuple[str, ...]  # always there


_CITIES = (
    _City("Paris", "FR", 48.8566, 2.3522, "Europe/Paris", 150,
          (("Le Marais", "Rue de Bretagne"), ("Montmartre", "Rue des Martyrs"),
           ("Saint-Germain-des-Prés", "Rue du Bac"), ("Canal Saint-Martin", "Quai de Valmy")),
          "the Louvre", False),
    _City("Lyon", "FR", 45.7640, 4.8357, "Europe/Paris", 95,
          (("Vieux Lyon", "Rue Saint-Jean"), ("Croix-Rousse", "Montée de la Grande Côte"),
           ("Presqu'île", "Rue de la République")), "Place Bellecour", False),
    _City("Nice", "FR", 43.7102, 7.2620, "Europe/Paris", 120,
          (("Vieux Nice", "Rue Droite"), ("Le Port", "Rue Bonaparte"), ("Carré d'Or", "Rue de France")),
          "the Promenade des Anglais", True),
    _City("Berlin", "DE", 52.5200, 13.4050, "Europe/Berlin", 105,
          (("Kreuzberg", "Oranienstraße"), ("Prenzlauer Berg", "Kastanienallee"), ("Mitte", "Torstraße"),
           ("Friedrichshain", "Simon-Dach-Straße")), "the Brandenburg Gate", False),
    _City("Munich", "DE", 48.1351, 11.5820, "Europe/Berlin", 125,
          (("Schwabing", "Leopoldstraße"), ("Maxvorstadt", "Türkenstraße"),
           ("Glockenbachviertel", "Müllerstraße")), "the Englischer Garten", False),
    _City("Hamburg", "DE", 53.5511, 9.9937, "Europe/Berlin", 110,
          (("Sternschanze", "Schanzenstraße"), ("Ottensen", "Ottenser Hauptstraße"),
           ("HafenCity", "Am Sandtorkai")), "the Elbphilharmonie", False),
    _City("Amsterdam", "NL", 52.3676, 4.9041, "Europe/Amsterdam", 165,
          (("Jordaan", "Prinsengracht"), ("De Pijp", "Albert Cuypstraat"), ("Oud-West", "Overtoom")),
          "the Rijksmuseum", False),
    _City("Brussels", "BE", 50.8503, 4.3517, "Europe/Brussels", 100,
          (("Ixelles", "Rue du Bailli"), ("Saint-Gilles", "Chaussée de Charleroi"), ("Marolles", "Rue Haute")),
          "the Grand-Place", False),
    _City("Vienna", "AT", 48.2082, 16.3738, "Europe/Vienna", 110,
          (("Neubau", "Neubaugasse"), ("Leopoldstadt", "Praterstraße"), ("Mariahilf", "Mariahilfer Straße")),
          "St. Stephen's Cathedral", False),
    _City("Rome", "IT", 41.9028, 12.4964, "Europe/Rome", 130,
          (("Trastevere", "Via della Lungaretta"), ("Monti", "Via dei Serpenti"), ("Prati", "Via Cola di Rienzo")),
          "the Pantheon", True),
    _City("Milan", "IT", 45.4642, 9.1900, "Europe/Rome", 135,
          (("Brera", "Via Solferino"), ("Navigli", "Ripa di Porta Ticinese"), ("Isola", "Via Borsieri")),
          "the Duomo", False),
    _City("Florence", "IT", 43.7696, 11.2558, "Europe/Rome", 125,
          (("Oltrarno", "Via Maggio"), ("Santa Croce", "Borgo Pinti"), ("San Niccolò", "Via di San Niccolò")),
          "the Ponte Vecchio", True),
    _City("Madrid", "ES", 40.4168, -3.7038, "Europe/Madrid", 110,
          (("Malasaña", "Calle del Espíritu Santo"), ("La Latina", "Calle de la Cava Baja"),
           ("Chamberí", "Calle de Fuencarral"), ("Salamanca", "Calle de Serrano")), "the Retiro Park", True),
    _City("Barcelona", "ES", 41.3874, 2.1686, "Europe/Madrid", 130,
          (("Gràcia", "Carrer de Verdi"), ("El Born", "Carrer de l'Argenteria"), ("Eixample", "Carrer de Mallorca"),
           ("Barceloneta", "Passeig de Joan de Borbó")), "the Sagrada Família", True),
    _City("Seville", "ES", 37.3891, -5.9845, "Europe/Madrid", 95,
          (("Santa Cruz", "Calle Mateos Gago"), ("Triana", "Calle Betis"), ("Alameda", "Calle Feria")),
          "the Giralda", True),
    _City("Lisbon", "PT", 38.7223, -9.1393, "Europe/Lisbon", 100,
          (("Alfama", "Rua dos Remédios"), ("Bairro Alto", "Rua da Rosa"), ("Príncipe Real", "Rua Dom Pedro V")),
          "São Jorge Castle", True),
    _City("Porto", "PT", 41.1579, -8.6291, "Europe/Lisbon", 85,
          (("Ribeira", "Rua das Flores"), ("Baixa", "Rua de Santa Catarina"), ("Cedofeita", "Rua de Cedofeita")),
          "the Dom Luís I Bridge", False),
    _City("Dublin", "IE", 53.3498, -6.2603, "Europe/Dublin", 150,
          (("Portobello", "South Richmond Street"), ("Ranelagh", "Ranelagh Road"), ("Smithfield", "Capel Street")),
          "Trinity College", False),
    _City("Athens", "GR", 37.9838, 23.7275, "Europe/Athens", 85,
          (("Plaka", "Adrianou"), ("Koukaki", "Veikou"), ("Kolonaki", "Skoufa")), "the Acropolis", True),
    _City("Helsinki", "FI", 60.1699, 24.9384, "Europe/Helsinki", 105,
          (("Kallio", "Fleminginkatu"), ("Punavuori", "Iso Roobertinkatu"), ("Kamppi", "Annankatu")),
          "Helsinki Cathedral", False),
    _City("New York", "US", 40.7128, -74.0060, "America/New_York", 230,
          (("Williamsburg", "Bedford Avenue"), ("West Village", "Bleecker Street"),
           ("Lower East Side", "Orchard Street"), ("Harlem", "Malcolm X Boulevard")), "Central Park", False),
    _City("Boston", "US", 42.3601, -71.0589, "America/New_York", 190,
          (("Back Bay", "Newbury Street"), ("Beacon Hill", "Charles Street"), ("South End", "Tremont Street")),
          "Boston Common", False),
    _City("Chicago", "US", 41.8781, -87.6298, "America/Chicago", 160,
          (("Wicker Park", "Milwaukee Avenue"), ("Lincoln Park", "Armitage Avenue"), ("West Loop", "Randolph Street")),
          "Millennium Park", False),
    _City("San Francisco", "US", 37.7749, -122.4194, "America/Los_Angeles", 210,
          (("Mission District", "Valencia Street"), ("North Beach", "Columbus Avenue"),
           ("Hayes Valley", "Hayes Street")),
          "Dolores Park", False),
    _City("Los Angeles", "US", 34.0522, -118.2437, "America/Los_Angeles", 185,
          (("Silver Lake", "Sunset Boulevard"), ("Venice", "Abbot Kinney Boulevard"),
           ("Los Feliz", "Hillhurst Avenue")),
          "Griffith Observatory", True),
    _City("Seattle", "US", 47.6062, -122.3321, "America/Los_Angeles", 170,
          (("Capitol Hill", "Pike Street"), ("Ballard", "Ballard Avenue NW"), ("Fremont", "Fremont Avenue N")),
          "Pike Place Market", False),
    _City("Austin", "US", 30.2672, -97.7431, "America/Chicago", 150,
          (("South Congress", "South Congress Avenue"), ("East Austin", "East 6th Street"),
           ("Zilker", "Barton Springs Road")), "Lady Bird Lake", True),
    _City("Miami", "US", 25.7617, -80.1918, "America/New_York", 175,
          (("Wynwood", "NW 2nd Avenue"), ("Little Havana", "SW 8th Street"), ("Brickell", "Brickell Avenue")),
          "Biscayne Bay", True),
    _City("New Orleans", "US", 29.9511, -90.0715, "America/Chicago", 140,
          (("French Quarter", "Royal Street"), ("Garden District", "Magazine Street"), ("Marigny", "Frenchmen Street")),
          "Jackson Square", True),
    _City("Denver", "US", 39.7392, -104.9903, "America/Denver", 140,
          (("LoDo", "Blake Street"), ("Highlands", "Tennyson Street"), ("RiNo", "Larimer Street")),
          "Union Station", False),
    _City("Toronto", "CA", 43.6532, -79.3832, "America/Toronto", 190,
          (("Queen West", "Queen Street West"), ("Kensington Market", "Augusta Avenue"),
           ("the Annex", "Bloor Street West")), "the CN Tower", False),
    _City("Montreal", "CA", 45.5019, -73.5674, "America/Toronto", 160,
          (("Plateau-Mont-Royal", "Rue Saint-Denis"), ("Mile End", "Boulevard Saint-Laurent"),
           ("Old Montreal", "Rue Saint-Paul Ouest")), "Mount Royal", False),
    _City("Vancouver", "CA", 49.2827, -123.1207, "America/Vancouver", 200,
          (("Kitsilano", "West 4th Avenue"), ("Gastown", "Water Street"), ("Mount Pleasant", "Main Street")),
          "Stanley Park", False),
    _City("Quebec City", "CA", 46.8139, -71.2080, "America/Toronto", 150,
          (("Old Quebec", "Rue Saint-Jean"), ("Saint-Roch", "Rue Saint-Joseph Est"), ("Montcalm", "Avenue Cartier")),
          "the Château Frontenac", False),
)  # fmt: skip

_KINDS = (
    _RoomKind("single room", "room", 0.6, (1, 1), ()),
    _RoomKind("double room", "room", 1.0, (2, 2), ()),
    _RoomKind("twin room", "room", 1.0, (2, 2), ()),
    _RoomKind("studio", "studio", 1.15, (2, 3), ("kitchen",)),
    _RoomKind("one-bedroom apartment", "apartment", 1.5, (2, 4), ("kitchen",)),
    _RoomKind("two-bedroom apartment", "apartment", 2.1, (4, 6), ("kitchen", "washer")),
    _RoomKind("loft", "loft", 1.8, (2, 4), ("kitchen", "workspace")),
    _RoomKind("suite", "suite", 2.4, (2, 4), ()),
    _RoomKind("family room", "room", 1.6, (3, 6), ()),
)

_CURRENCIES = {"US": "USD", "CA": "CAD"}  # every European city above is in the euro area
_STREET_FIRST = {"DE": "{street} {n}", "AT": "{street} {n}", "NL": "{street} {n}", "BE": "{street} {n}",
                 "FI": "{street} {n}", "GR": "{street} {n}", "IT": "{street}, {n}", "ES": "{street}, {n}",
                 "PT": "{street}, {n}"}  # fmt: skip
_ADJECTIVES = ("bright", "quiet", "cosy", "spacious", "stylish", "charming", "modern", "sunny", "airy", "elegant")
_HIGHLIGHTS = {  # what a description mentions, most distinctive first; at most three of them
    "pool": "access to a pool", "balcony": "a private balcony", "kitchen": "a fully equipped kitchen",
    "breakfast": "breakfast every morning", "workspace": "a desk for remote work",
    "parking": "a private parking space", "gym": "a gym in the building", "washer": "a washing machine",
    "air_conditioning": "air conditioning", "wifi": "fast wifi",
}  # fmt: skip
_CENT = decimal.Decimal("0.01")


def demo_rooms(count: int, *, seed: int = 7) -> list[Room]:
    """`count` demo rooms, the same ones for the same seed. Their ids are 0: the store assigns them."""
    if count < 0:
        raise ValueError("count must not be negative")
    rng = random.Random(seed)
    return [_room(rng, number) for number in range(1, count + 1)]


def _room(rng: random.Random, number: int) -> Room:
    city = rng.choice(_CITIES)
    kind = rng.choice(_KINDS)
    quarter, street = rng.choice(city.quarters)
    capacity = rng.randint(*kind.capacity)
    amenities = _amenities(rng, city, kind)
    adjective = rng.choice(_ADJECTIVES)
    address_format = _STREET_FIRST.get(city.country, "{n} {street}")
    house_number = rng.randint(10, 1999) if city.country in _CURRENCIES else rng.randint(1, 120)
    return Room(
        title=_title(rng, adjective, kind, quarter, city, amenities),
        description=_description(rng, adjective, kind, quarter, street, city, capacity, amenities),
        location=Location(
            city=city.name,
            country=city.country,
            address=address_format.format(street=street, n=house_number),
            lat=round(city.lat + rng.uniform(-0.02, 0.02), 6),
            lon=round(city.lon + rng.uniform(-0.02, 0.02), 6),
            timezone=city.timezone,
        ),
        price_per_night=_price(rng, city, kind, amenities),
        currency=_CURRENCIES.get(city.country, "EUR"),
        capacity=capacity,
        amenities=amenities,
        images=[IMAGE_URL.format(room=number, image=k) for k in range(1, rng.randint(2, 4) + 1)],
    )


def _amenities(rng: random.Random, city: _City, kind: _RoomKind) -> list[str]:
    american = city.country in _CURRENCIES
    has_kitchen = "kitchen" in kind.amenities
    chance = {
        "wifi": 0.97,
        "workspace": 0.35,
        "balcony": 0.3,
        "air_conditioning": 0.85 if city.warm or american else 0.25,
        "heating": 0.4 if city.warm else 0.85,
        "washer": 0.6 if has_kitchen else 0.0,
        "elevator": 0.45,
        "tv": 0.6,
        "parking": 0.45 if american else 0.15,
        "breakfast": 0.05 if has_kitchen else 0.4,
        "gym": 0.25 if american else 0.08,
        "pool": (0.35 if city.warm else 0.05) if american else (0.12 if city.warm else 0.02),
        "pet_friendly": 0.15,
    }
    drawn = {name: rng.random() < p for name, p in chance.items()}
    return [name for name in AMENITIES if name in kind.amenities or drawn.get(name, False)]


def _title(rng: random.Random, adjective: str, kind: _RoomKind, quarter: str, city: _City, amenities: list[str]) -> str:
    highlights = [name for name in ("balcony", "pool", "workspace", "breakfast") if name in amenities]
    match rng.randrange(3):
        case 0 if highlights:
            feature = {"balcony": "a balcony", "pool": "pool access", "workspace": "a workspace",
                       "breakfast": "breakfast"}[rng.choice(highlights)]  # fmt: skip
            title = f"{kind.name} with {feature} in {quarter}"
        case 1:
            title = f"{adjective} {kind.name} in {quarter}, {city.name}"
        case _:
            title = f"{adjective} {kind.name} in {quarter}"
    return title[0].upper() + title[1:]


def _description(
    rng: random.Random,
    adjective: str,
    kind: _RoomKind,
    quarter: str,
    street: str,
    city: _City,
    capacity: int,
    amenities: list[str],
) -> str:
    minutes = rng.randint(5, 25)
    article = "An" if adjective[0] in "aeiou" else "A"
    sentences = [
        f"{article} {adjective} {kind.name} on {street} in {quarter}, {city.name}, "
        f"{minutes} minutes from {city.landmark}."
    ]
    if capacity == 1:
        sentences.append("Ideal for a solo traveller.")
    elif capacity == 2:
        sentences.append("Sleeps two.")
    else:
        sentences.append(f"Sleeps up to {capacity} guests.")
    phrases = [phrase for name, phrase in _HIGHLIGHTS.items() if name in amenities][:3]
    if phrases:
        listed = phrases[0] if len(phrases) == 1 else f"{', '.join(phrases[:-1])} and {phrases[-1]}"
        sentences.append(f"The {kind.noun} comes with {listed}.")
    if "pet_friendly" in amenities:
        sentences.append("Well-behaved pets are welcome.")
    return " ".join(sentences)


def _price(rng: random.Random, city: _City, kind: _RoomKind, amenities: list[str]) -> decimal.Decimal:
    price = city.double_room_price * kind.price_factor * rng.uniform(0.85, 1.2)
    price *= 1.1 if "pool" in amenities else 1.0
    price *= 1.05 if "breakfast" in amenities else 1.0
    whole = max(25, round(price))
    cents = rng.choice((0, 0, 0, 50, 99))
    if cents == 99:  # 129.99 rather than 130.99
        whole -= 1
    return (decimal.Decimal(whole) + decimal.Decimal(cents) / 100).quantize(_CENT)
