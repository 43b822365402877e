module mlfootprint.dev/hack/image/pause

go 1.24
