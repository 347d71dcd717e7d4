"""Renders a Markdown document N times with Python-Markdown.
    python3 markdown_drv.py DOC.md N"""
import driver

markdown = driver.load("markdown")
md = markdown.Markdown(extensions=["markdown.extensions.tables",
                                   "markdown.extensions.fenced_code",
                                   "markdown.extensions.toc"])
driver.run(lambda text, i: md.reset().convert(text))
