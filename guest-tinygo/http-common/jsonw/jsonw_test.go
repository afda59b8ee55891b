package jsonw

import "testing"

func TestAppendString(t *testing.T) {
	got := string(AppendString(nil, "a\"\\/\x00\x1f\x7f<>&\u2028\u2029é\b\f\n\r\t"))
	want := "\"a\\\"\\\\/\\u0000\\u001f\x7f<>&\u2028\u2029é\\b\\f\\n\\r\\t\""
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestAppendStringAppends(t *testing.T) {
	if got := string(AppendString([]byte("x:"), "")); got != `x:""` {
		t.Errorf("got %s", got)
	}
}

func TestErrorBody(t *testing.T) {
	got := string(ErrorBody("bad \"x\"\x01"))
	if want := `{"error":"bad \"x\"\u0001"}`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}
