# Turns `pushpool check --print-defaults` into the roff key reference of
# pushpool.conf(5), so the page lists exactly the keys of the config table.
function esc(s) {
	gsub(/\\/, "\\e", s)
	gsub(/-/, "\\-", s)
	return s
}
function line(s) {
	if (s ~ /^[.']/)
		s = "\\&" s
	print s
}
/^\[/ {
	section = $0
	print ".SS " esc(section)
	in_section_text = 1
	next
}
/^$/ { in_section_text = 0; next }
/^# / && in_section_text {
	line(esc(substr($0, 3)))
	next
}
/^# [a-z_]+ \(/ && !have_key {
	have_key = 1
	head = substr($0, 3)
	key = head; sub(/ .*/, "", key)
	type = head; sub(/^[^(]*\(/, "", type); sub(/\), [A-Z_<>]+$/, "", type)
	env = head; sub(/.*, /, "", env)
	desc = ""
	next
}
/^# / && have_key {
	desc = desc (desc == "" ? "" : " ") substr($0, 3)
	next
}
/^;/ && have_key {
	value = $0; sub(/^;[a-z_]+ = ?/, "", value)
	print ".TP"
	print ".B " esc(key)
	line(esc(type) (value == "" ? "" : "; default \\fB" esc(value) "\\fR") "; environment \\fB" esc(env) "\\fR.")
	print ".br"
	line(esc(desc))
	have_key = 0
	next
}
