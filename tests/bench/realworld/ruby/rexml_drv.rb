# Parses an XML catalogue N times with REXML, queries it with XPath and
# writes a new document.
#   ruby rexml_drv.rb CATALOG.xml N
require_relative "driver"

Driver.run("rexml/document") do |xml|
  doc = REXML::Document.new(xml)
  report = REXML::Document.new
  root = report.add_element("report", "from" => doc.root.attributes["updated"])
  REXML::XPath.each(doc, "//book[@lang='en']") do |book|
    entry = root.add_element("entry", "id" => book.attributes["id"])
    entry.add_text(REXML::XPath.first(book, "dc:title").text)
    authors = book.get_elements("author").map { |a| "#{a.attributes['last']}, #{a.attributes['first']}" }
    entry.add_element("authors").add_text(authors.join("; "))
    price = book.elements["price"]
    entry.add_attribute("price", format("%.2f", price.text.to_f * 1.2))
  end
  loans = REXML::XPath.match(doc, "/catalog/loans/loan").map { |l| l.attributes["book"] }
  root.add_element("loans").add_text(loans.join(" "))
  out = +""
  report.write(output: out, indent: 2)
  out
end
