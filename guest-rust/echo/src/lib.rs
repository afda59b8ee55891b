//! `echo`: the benchmark guest; exports that do nothing but cross the boundary.

wit_bindgen::generate!({ path: "../../host/witplug/benches/wit", world: "echo-plugin" });

use exports::witplug_bench::echo::echo::Guest;

struct Echo;

impl Guest for Echo {
    fn noop() {}

    fn echo_string(s: String) -> String {
        s
    }
}

export!(Echo);
