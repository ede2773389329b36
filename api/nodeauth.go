package api

import "github.com/labstack/echo/v4"

// isNode reports whether the request comes from another node of the
// cluster. Until nodes share a secret, none does.
func (s *Server) isNode(c echo.Context) bool { return false }
