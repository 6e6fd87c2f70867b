// Package postgres holds event-consumers' tables besides the projections (which are in the projections
// package below): the workflow's parked steps and the collect requests due to expire.
package postgres
