# A worker: joins with the bootstrap token, trusting only the signalled CA, then tells Heat.
kubeadm join "__INIT_MASTER_IP__:6443" --token "__BOOTSTRAP_TOKEN__" \
  --discovery-token-ca-cert-hash "$(ca_cert_hash)"
until systemctl is-active --quiet kubelet; do sleep 5; done
__WAIT_NOTIFY__ --data-binary '{"status": "SUCCESS"}'
