module wit_component

go 1.27.1
