module github.com/apiary-io/apiary

go 1.26.0
