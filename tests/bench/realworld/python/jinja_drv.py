"""Renders a Jinja2 template N times (Jinja2 with MarkupSafe's pure-Python
code).
    python3 jinja_drv.py PAGE.html.j2 N"""
import driver

jinja2 = driver.load("jinja2")


class Item:
    def __init__(self, name, price, category, tags):
        self.name, self.price, self.category, self.tags = name, price, category, tags


class User:
    def __init__(self, name, email):
        self.name, self.email = name, email


CATEGORIES = ["books", "tools", "food <fresh>"]
ITEMS = [Item(f"item {i} & co", 0.5 + (i * 7919) % 100 / 3, CATEGORIES[i % 3],
              [f"t{i % 5}", "<b>"]) for i in range(24)]
USER = User("Ada", "ada@example.org")
templates = {}


def render(text, i):
    if text not in templates:
        templates[text] = jinja2.Environment(autoescape=True).from_string(text)
    return templates[text].render(title=f"Catalogue {i % 3}", user=USER, items=ITEMS)


driver.run(render)
