package rule

import (
	"testing"

	"witplug.dev/http-common/ruletest"
)

type req struct {
	config  map[string]string
	country string // "" = absent
	ip      string // "" = absent
	accept  []string
	path    string // "" = "/"
	noPath  bool   // the request has no path-with-query
}

func (r req) build() Request {
	request := Request{
		Config: func(key string) (string, bool) {
			v, ok := r.config[key]
			return v, ok
		},
		PathWithQuery: r.path,
	}
	if r.country != "" {
		request.Country = []byte(r.country)
	}
	if r.ip != "" {
		request.ClientIP = []byte(r.ip)
	}
	if request.PathWithQuery == "" && !r.noPath {
		request.PathWithQuery = "/"
	}
	for _, a := range r.accept {
		request.Accept = append(request.Accept, []byte(a))
	}
	return request
}

func redirect(location string) Response {
	return Response{
		Status:  307,
		Headers: [][2]string{{"content-type", "text/plain; charset=utf-8"}, {"location", location}},
		Body:    []byte("redirecting to " + location + "\n"),
	}
}

func asJSON(body string) Response {
	return Response{Status: 200, Headers: [][2]string{{"content-type", "application/json"}}, Body: []byte(body)}
}

func failure(body string) Response {
	return Response{Status: 500, Headers: [][2]string{{"content-type", "application/json"}}, Body: []byte(body)}
}

var ranges = map[string]string{
	"ip-ranges": " 10.0.0.0/8=eu-west, 10.1.0.0/16=ap-south ,2001:db8::/32=sa-east,\t192.168.1.7/24=lan ",
}

func TestRoute(t *testing.T) {
	tests := []struct {
		name string
		req  req
		want Response
	}{
		{"default", req{}, redirect("https://us-east.example.com/")},
		{"no path", req{noPath: true}, redirect("https://us-east.example.com")},
		{"path and query kept", req{path: "/a/b?x=1&y=%20"}, redirect("https://us-east.example.com/a/b?x=1&y=%20")},
		{"configured default and domain", req{config: map[string]string{"domain": "witplug.dev", "default-region": "mars"}},
			redirect("https://mars.witplug.dev/")},
		{"country", req{country: "DE"}, redirect("https://eu-west.example.com/")},
		{"country trimmed and upper-cased", req{country: " jp\t"}, redirect("https://ap-south.example.com/")},
		{"country mixed case", req{country: "bR"}, redirect("https://sa-east.example.com/")},
		{"country, Unicode space trimmed", req{country: "\u00a0MX\u3000"}, redirect("https://us-east.example.com/")},
		{"unlisted country falls through", req{country: "ZZ", ip: "10.2.3.4", config: ranges}, redirect("https://eu-west.example.com/")},
		{"three letters fall through", req{country: "DEU"}, redirect("https://us-east.example.com/")},
		{"one letter falls through", req{country: "D"}, redirect("https://us-east.example.com/")},
		{"non-ASCII that upper-cases to ASCII falls through", req{country: "uſ"}, redirect("https://us-east.example.com/")},
		{"digits fall through", req{country: "D1"}, redirect("https://us-east.example.com/")},
		{"inner space falls through", req{country: "D E"}, redirect("https://us-east.example.com/")},
		{"country wins over address", req{country: "us", ip: "10.1.2.3", config: ranges}, redirect("https://us-east.example.com/")},
		{"country wins over bad ranges", req{country: "FR", ip: "10.1.2.3", config: map[string]string{"ip-ranges": "nope"}}, redirect("https://eu-west.example.com/")},
		{"address", req{ip: "10.9.9.9", config: ranges}, redirect("https://eu-west.example.com/")},
		{"longest prefix", req{ip: "10.1.9.9", config: ranges}, redirect("https://ap-south.example.com/")},
		{"host bits of a range ignored", req{ip: "192.168.1.200", config: ranges}, redirect("https://lan.example.com/")},
		{"IPv6", req{ip: "2001:db8::1", config: ranges}, redirect("https://sa-east.example.com/")},
		{"IPv4-mapped IPv6 matches IPv4 ranges", req{ip: "::ffff:10.1.0.1", config: ranges}, redirect("https://ap-south.example.com/")},
		{"IPv4-mapped IPv6 does not match ::/0", req{ip: "::ffff:10.1.0.1", config: map[string]string{"ip-ranges": "::/0=v6"}}, redirect("https://us-east.example.com/")},
		{"IPv4 does not match IPv6 ranges", req{ip: "10.1.0.1", config: map[string]string{"ip-ranges": "::ffff:0:0/96=mapped"}}, redirect("https://us-east.example.com/")},
		{"first of equal prefixes", req{ip: "10.0.0.1", config: map[string]string{"ip-ranges": "10.0.0.0/8=a,10.0.0.0/8=b"}}, redirect("https://a.example.com/")},
		{"zero-length prefix", req{ip: "8.8.8.8", config: map[string]string{"ip-ranges": "0.0.0.0/0=all,10.0.0.0/8=ten"}}, redirect("https://all.example.com/")},
		{"/32", req{ip: "8.8.8.8", config: map[string]string{"ip-ranges": "8.8.8.8/32=one"}}, redirect("https://one.example.com/")},
		{"no match", req{ip: "11.0.0.1", config: ranges}, redirect("https://us-east.example.com/")},
		{"unparseable address", req{ip: "10.0.0.1:80", config: ranges}, redirect("https://us-east.example.com/")},
		{"address with zone", req{ip: "fe80::1%eth0", config: map[string]string{"ip-ranges": "fe80::/10=link"}}, redirect("https://us-east.example.com/")},
		{"no ranges configured", req{ip: "10.0.0.1"}, redirect("https://us-east.example.com/")},
		{"empty ranges", req{ip: "10.0.0.1", config: map[string]string{"ip-ranges": " "}}, redirect("https://us-east.example.com/")},
		{"empty entries skipped", req{ip: "10.0.0.1", config: map[string]string{"ip-ranges": ",10.0.0.0/8=ten,,"}}, redirect("https://ten.example.com/")},
		{"bad entry", req{ip: "10.0.0.1", config: map[string]string{"ip-ranges": "10.0.0.0/8=ten, 300.0.0.0/8=x ,"}}, failure(`{"error":"bad ip-ranges entry: 300.0.0.0/8=x"}`)},
		{"bad entry without client address", req{config: map[string]string{"ip-ranges": "x"}}, failure(`{"error":"bad ip-ranges entry: x"}`)},
		{"bad entry even after a match", req{ip: "10.0.0.1", config: map[string]string{"ip-ranges": "10.0.0.0/8=ten,bad"}}, failure(`{"error":"bad ip-ranges entry: bad"}`)},
		{"first bad entry named", req{config: map[string]string{"ip-ranges": "a,b"}}, failure(`{"error":"bad ip-ranges entry: a"}`)},
		{"no prefix length", req{config: map[string]string{"ip-ranges": "10.0.0.0=ten"}}, failure(`{"error":"bad ip-ranges entry: 10.0.0.0=ten"}`)},
		{"prefix too long", req{config: map[string]string{"ip-ranges": "10.0.0.0/33=ten"}}, failure(`{"error":"bad ip-ranges entry: 10.0.0.0/33=ten"}`)},
		{"IPv6 prefix too long", req{config: map[string]string{"ip-ranges": "::/129=x"}}, failure(`{"error":"bad ip-ranges entry: ::/129=x"}`)},
		{"prefix with leading zero", req{config: map[string]string{"ip-ranges": "10.0.0.0/08=ten"}}, failure(`{"error":"bad ip-ranges entry: 10.0.0.0/08=ten"}`)},
		{"prefix with sign", req{config: map[string]string{"ip-ranges": "10.0.0.0/+8=ten"}}, failure(`{"error":"bad ip-ranges entry: 10.0.0.0/+8=ten"}`)},
		{"octet with leading zero", req{config: map[string]string{"ip-ranges": "010.0.0.0/8=ten"}}, failure(`{"error":"bad ip-ranges entry: 010.0.0.0/8=ten"}`)},
		{"no region", req{config: map[string]string{"ip-ranges": "10.0.0.0/8="}}, failure(`{"error":"bad ip-ranges entry: 10.0.0.0/8="}`)},
		{"region cut at the first equals", req{ip: "10.0.0.1", config: map[string]string{"ip-ranges": "10.0.0.0/8=a=b"}}, redirect("https://a=b.example.com/")},
		{"space around equals", req{config: map[string]string{"ip-ranges": "10.0.0.0/8 = ten"}}, failure(`{"error":"bad ip-ranges entry: 10.0.0.0/8 = ten"}`)},
		{"zone in range", req{config: map[string]string{"ip-ranges": "fe80::%1/10=x"}}, failure(`{"error":"bad ip-ranges entry: fe80::%1/10=x"}`)},
		{"bad entry escaped in JSON", req{config: map[string]string{"ip-ranges": `"\` + "\x01"}}, failure(`{"error":"bad ip-ranges entry: \"\\\u0001"}`)},
		{"format=json", req{path: "/p?a=1&format=json"}, asJSON(`{"region":"us-east","source":"default","location":"https://us-east.example.com/p?a=1&format=json"}`)},
		{"format=json first", req{path: "/?format=json&b"}, asJSON(`{"region":"us-east","source":"default","location":"https://us-east.example.com/?format=json&b"}`)},
		{"format=JSON is not json", req{path: "/?format=JSON"}, redirect("https://us-east.example.com/?format=JSON")},
		{"xformat=json is not json", req{path: "/?xformat=json"}, redirect("https://us-east.example.com/?xformat=json")},
		{"format=jsonx is not json", req{path: "/?format=jsonx"}, redirect("https://us-east.example.com/?format=jsonx")},
		{"format=json in the path is not json", req{path: "/format=json"}, redirect("https://us-east.example.com/format=json")},
		{"percent-encoded is not json", req{path: "/?format=%6Ason"}, redirect("https://us-east.example.com/?format=%6Ason")},
		{"accept", req{accept: []string{"text/html, application/json;q=0.9"}, country: "KR"},
			asJSON(`{"region":"ap-south","source":"country","location":"https://ap-south.example.com/"}`)},
		{"second accept value", req{accept: []string{"text/html", "application/json"}, ip: "10.1.0.1", config: ranges},
			asJSON(`{"region":"ap-south","source":"address","location":"https://ap-south.example.com/"}`)},
		{"accept is case-sensitive", req{accept: []string{"Application/JSON"}}, redirect("https://us-east.example.com/")},
		{"accept of a subtype", req{accept: []string{"application/json-seq"}},
			asJSON(`{"region":"us-east","source":"default","location":"https://us-east.example.com/"}`)},
		{"JSON escapes, no HTML escaping", req{path: "/<a>&\u2028?format=json", config: map[string]string{"default-region": "r\"é"}},
			asJSON("{\"region\":\"r\\\"é\",\"source\":\"default\",\"location\":\"https://r\\\"é.example.com/<a>&\u2028?format=json\"}")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { ruletest.Expect(t, Route(tt.req.build()), tt.want) })
	}
}

func TestEveryListedCountry(t *testing.T) {
	want := map[string]string{"us-east": "US CA MX", "sa-east": "BR AR CL CO PE",
		"eu-west": "GB IE FR DE NL BE ES PT IT CH AT SE NO DK FI PL", "ap-south": "IN SG JP KR AU NZ ID TH VN PH"}
	n := 0
	for region, codes := range want {
		for i := 0; i+1 < len(codes); i += 3 {
			n++
			if got, ok := byCountry([]byte(codes[i : i+2])); !ok || got != region {
				t.Errorf("%s: got %q %v, want %s", codes[i:i+2], got, ok, region)
			}
		}
	}
	if n != len(countries) {
		t.Errorf("%d codes listed, table has %d", n, len(countries))
	}
}
