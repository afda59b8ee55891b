// Package export_witplug_plugin_metadata implements the exported `metadata` interface.
//
// wit-bindgen-go names the package after the interface; `wit_exports.go`, the generated
// package main, calls Describe.
package export_witplug_plugin_metadata

import metadata "wit_component/witplug_plugin_metadata"

// Describe says what this plugin is.
//
// It calls no guestgc.Collect: it allocates next to nothing, and the pre-initialised
// snapshot, taken after a call of Describe, keeps a fresh instance's state that way.
func Describe() metadata.PluginInfo {
	return metadata.PluginInfo{
		Name:        "email-normalizer",
		Version:     "0.2.0",
		Description: "Trims text fields, validates and lowercases email addresses, splits multi-address fields, drops blocked domains (Go guest, transform@0.2.0).",
	}
}
