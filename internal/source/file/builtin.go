package file

import "slices"

// isBuiltinKind says whether gvk ("group/version Kind", "v1 Service" for the
// core group) is a kind of a built-in API group, which client-go's full scheme
// would decode.
func isBuiltinKind(gvk string) bool {
	_, ok := slices.BinarySearch(builtinKinds, gvk)
	return ok
}
