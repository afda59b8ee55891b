// Package export_witplug_plugin_metadata implements the exported `metadata` interface.
//
// wit-bindgen-go names the package after the interface; `wit_exports.go`, the generated
// package main, calls Describe.
package export_witplug_plugin_metadata

import metadata "wit_component/witplug_plugin_metadata"

// Describe says what this plugin is.
func Describe() metadata.PluginInfo {
	return metadata.PluginInfo{
		Name:        "hostile",
		Version:     "0.1.0",
		Description: "Attacks its host on demand; for tests only. (Go guest)",
	}
}
