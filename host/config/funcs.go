package config

import (
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// newEvalContext returns the context every expression in a config file is
// evaluated in: no variables, and a few functions. lookupEnv is
// os.LookupEnv outside tests.
func newEvalContext(lookupEnv func(string) (string, bool)) *hcl.EvalContext {
	return &hcl.EvalContext{
		Functions: map[string]function.Function{
			"env":       envFunc(lookupEnv),
			"lower":     stdlib.LowerFunc,
			"upper":     stdlib.UpperFunc,
			"trimspace": stdlib.TrimSpaceFunc,
		},
	}
}

// defaultEvalContext is the context used when a Config was not made by
// Parse (a Config literal in a test, say).
func defaultEvalContext() *hcl.EvalContext {
	return newEvalContext(os.LookupEnv)
}

// envFunc returns env(NAME) and env(NAME, DEFAULT): the value of the
// environment variable NAME; when it is unset, DEFAULT, or an error when
// there is no DEFAULT. A variable that is set but empty is set.
//
// The error is not a function.ArgError on purpose: hclsyntax then reports
// it at the call, which is where the user looks.
func envFunc(lookupEnv func(string) (string, bool)) function.Function {
	return function.New(&function.Spec{
		Description: "Returns the value of an environment variable, or DEFAULT when it is unset.",
		Params: []function.Parameter{
			{Name: "name", Type: cty.String},
		},
		VarParam: &function.Parameter{Name: "default", Type: cty.String},
		Type: func(args []cty.Value) (cty.Type, error) {
			if len(args) > 2 {
				return cty.NilType, fmt.Errorf("env takes a name and at most one default, got %d arguments", len(args))
			}
			return cty.String, nil
		},
		RefineResult: func(b *cty.RefinementBuilder) *cty.RefinementBuilder {
			return b.NotNull()
		},
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			name := args[0].AsString()
			if name == "" {
				return cty.NilVal, fmt.Errorf("the environment variable name is empty")
			}
			if v, ok := lookupEnv(name); ok {
				return cty.StringVal(v), nil
			}
			if len(args) == 2 {
				return args[1], nil
			}
			return cty.NilVal, fmt.Errorf("environment variable %s is not set", name)
		},
	})
}
