// Package rule is the region choice of the `http-geo` handler on plain Go values (the spec
// is "geo-router" in tasks/serve-spec.md). It imports no bindings, so its tests run natively.
package rule

import (
	"net/netip"
	"strings"

	"witplug.dev/http-common/jsonw"
)

// Request is what the router reads.
type Request struct {
	// Config reads a configuration entry.
	Config func(key string) (string, bool)
	// Country and ClientIP are the first values of `x-geo-country` and
	// `x-witplug-client-ip`, nil when absent.
	Country  []byte
	ClientIP []byte
	// Accept is every `accept` value.
	Accept [][]byte
	// PathWithQuery is the request's, as received.
	PathWithQuery string
}

// Response is the answer as plain values.
type Response struct {
	Status  uint16
	Headers [][2]string
	Body    []byte
}

const (
	jsonType = "application/json"
	textType = "text/plain; charset=utf-8"
)

// countries maps the listed ISO country codes to their region.
var countries = func() map[string]string {
	table := map[string]string{}
	for region, codes := range map[string]string{
		"us-east":  "US CA MX",
		"sa-east":  "BR AR CL CO PE",
		"eu-west":  "GB IE FR DE NL BE ES PT IT CH AT SE NO DK FI PL",
		"ap-south": "IN SG JP KR AU NZ ID TH VN PH",
	} {
		for _, code := range strings.Fields(codes) {
			table[code] = region
		}
	}
	return table
}()

// Route picks the region and answers with a redirection or, when asked, JSON.
func Route(req Request) Response {
	domain := configOr(req.Config, "domain", "example.com")
	region, source := "", ""
	if r, ok := byCountry(req.Country); ok {
		region, source = r, "country"
	} else {
		ranges, bad, ok := parseRanges(req.Config)
		if !ok {
			return Response{
				Status:  500,
				Headers: [][2]string{{"content-type", jsonType}},
				Body:    jsonw.ErrorBody("bad ip-ranges entry: " + bad),
			}
		}
		if r, ok := byAddress(ranges, req.ClientIP); ok {
			region, source = r, "address"
		} else {
			region, source = configOr(req.Config, "default-region", "us-east"), "default"
		}
	}
	location := "https://" + region + "." + domain + req.PathWithQuery

	if wantsJSON(req) {
		body := jsonw.AppendString([]byte(`{"region":`), region)
		body = jsonw.AppendString(append(body, `,"source":`...), source)
		body = jsonw.AppendString(append(body, `,"location":`...), location)
		return Response{
			Status:  200,
			Headers: [][2]string{{"content-type", jsonType}},
			Body:    append(body, '}'),
		}
	}
	return Response{
		Status:  307,
		Headers: [][2]string{{"content-type", textType}, {"location", location}},
		Body:    []byte("redirecting to " + location + "\n"),
	}
}

func configOr(config func(string) (string, bool), key, fallback string) string {
	if value, ok := config(key); ok {
		return value
	}
	return fallback
}

// byCountry reads `x-geo-country`: trimmed (Unicode white space, as Rust's str::trim),
// exactly two ASCII letters in any case, listed in the table.
func byCountry(header []byte) (string, bool) {
	code := strings.TrimSpace(string(header))
	if len(code) != 2 || !isLetter(code[0]) || !isLetter(code[1]) {
		return "", false
	}
	region, ok := countries[strings.ToUpper(code)]
	return region, ok
}

func isLetter(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// ipRange is one `CIDR=region` entry.
type ipRange struct {
	prefix netip.Prefix
	region string
}

// parseRanges reads `ip-ranges`: comma-separated `CIDR=region` entries, white space
// around each ignored, empty entries skipped. On a malformed entry it returns the entry
// (trimmed) and false.
func parseRanges(config func(string) (string, bool)) ([]ipRange, string, bool) {
	text, ok := config("ip-ranges")
	if !ok {
		return nil, "", true
	}
	var ranges []ipRange
	for _, entry := range strings.Split(text, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		r, ok := parseRange(entry)
		if !ok {
			return nil, entry, false
		}
		ranges = append(ranges, r)
	}
	return ranges, "", true
}

// parseRange reads `ADDRESS/BITS=REGION`, cut at the first `=`: ADDRESS an IPv4 (dotted
// quad, no leading zeros) or IPv6 address without zone, BITS a decimal without sign or
// leading zero, at most 32 or 128, REGION non-empty (anything else). Bits beyond the prefix
// may be set (ignored).
func parseRange(entry string) (ipRange, bool) {
	cidr, region, ok := strings.Cut(entry, "=")
	if !ok || region == "" {
		return ipRange{}, false
	}
	address, bits, ok := strings.Cut(cidr, "/")
	if !ok {
		return ipRange{}, false
	}
	ip, ok := parseIP(address)
	if !ok {
		return ipRange{}, false
	}
	n, ok := parseBits(bits, ip.BitLen())
	if !ok {
		return ipRange{}, false
	}
	prefix, err := ip.Prefix(n)
	if err != nil {
		return ipRange{}, false
	}
	return ipRange{prefix: prefix, region: region}, true
}

// parseIP reads an IPv4 or IPv6 address; zones (`%eth0`) are refused.
func parseIP(text string) (netip.Addr, bool) {
	ip, err := netip.ParseAddr(text)
	if err != nil || ip.Zone() != "" {
		return netip.Addr{}, false
	}
	return ip, true
}

func parseBits(text string, max int) (int, bool) {
	if text == "" || len(text) > 3 || (len(text) > 1 && text[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(text); i++ {
		if text[i] < '0' || text[i] > '9' {
			return 0, false
		}
		n = n*10 + int(text[i]-'0')
	}
	return n, n <= max
}

// byAddress is the region of the longest range holding the client's address (the first
// such range listed on a tie). An IPv4-mapped IPv6 address is taken as its IPv4 address,
// so it matches IPv4 ranges (and not IPv6 ones).
func byAddress(ranges []ipRange, header []byte) (string, bool) {
	if header == nil {
		return "", false
	}
	ip, ok := parseIP(string(header))
	if !ok {
		return "", false
	}
	ip = ip.Unmap()
	best, region := -1, ""
	for _, r := range ranges {
		if r.prefix.Bits() > best && r.prefix.Contains(ip) {
			best, region = r.prefix.Bits(), r.region
		}
	}
	return region, best >= 0
}

// wantsJSON: the query has the pair `format=json` (exact, among `&`-separated pairs), or an
// `accept` value contains `application/json` (exact case).
func wantsJSON(req Request) bool {
	if _, query, ok := strings.Cut(req.PathWithQuery, "?"); ok {
		for _, pair := range strings.Split(query, "&") {
			if pair == "format=json" {
				return true
			}
		}
	}
	for _, accept := range req.Accept {
		if strings.Contains(string(accept), "application/json") {
			return true
		}
	}
	return false
}
