module github.com/cairn-dev/cairn/sdk

go 1.26.0
