package lora_test

import (
	"bytes"
	"os"
	"testing"

	"github.com/usersim/usersim/slm/lora"
)

// FuzzParseConfig: any input parses or fails without panicking, and what
// parses survives Marshal and a second parse unchanged.
func FuzzParseConfig(f *testing.F) {
	if data, err := os.ReadFile("../../../shared/golden/hf/llama/adapter/adapter_config.json"); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"peft_type":"LORA","r":8,"lora_alpha":16.5,"target_modules":".*q_proj","rank_pattern":{"q":2},"alpha_pattern":{"k":1},"init_lora_weights":"gaussian","layers_to_transform":1}`))
	f.Add([]byte(`{"peft_type":"LORA","r":2,"target_modules":"all-linear","use_rslora":true,"lora_dropout":0.1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := lora.ParseConfig(data)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed config does not marshal: %v", err)
		}
		d, err := lora.ParseConfig(out)
		if err != nil {
			t.Fatalf("marshalled config does not parse: %v\n%s", err, out)
		}
		again, err := d.Marshal()
		if err != nil || !bytes.Equal(out, again) {
			t.Fatalf("second round trip differs:\n%s\n%s", out, again)
		}
	})
}
