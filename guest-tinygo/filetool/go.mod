module filetool

go 1.27.1
