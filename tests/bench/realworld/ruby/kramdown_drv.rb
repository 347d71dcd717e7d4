# Renders a Markdown document N times with kramdown.
#   ruby kramdown_drv.rb DOC.md N
require_relative "driver"

Driver.run("kramdown") { |text| Kramdown::Document.new(text, auto_ids: true).to_html }
