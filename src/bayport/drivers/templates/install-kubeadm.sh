#!/bin/bash
# Every node: container storage, containerd and kubeadm/kubelet/kubectl __KUBE_VERSION__ from
# pkgs.k8s.io. Heat fills in the double-underscored names; the role script appended below does the rest.
set -euxo pipefail
export DEBIAN_FRONTEND=noninteractive
mkdir -p /etc/bayport
echo "BAY_UUID=__CLUSTER_UUID__" > /etc/bayport/bay.env

if [ "__DOCKER_VOLUME_SIZE__" != "0" ]; then
  # The Cinder volume is attached after the server exists; give it time to appear.
  for _ in $(seq 1 120); do [ -b /dev/vdb ] && break; sleep 5; done
  blkid /dev/vdb || mkfs.ext4 -q /dev/vdb
  mkdir -p /var/lib/containerd
  grep -q '^/dev/vdb ' /etc/fstab || echo "/dev/vdb /var/lib/containerd ext4 defaults 0 2" >> /etc/fstab
  mount /var/lib/containerd
fi

swapoff -a
sed -i '/\sswap\s/d' /etc/fstab
modprobe overlay
modprobe br_netfilter
printf 'overlay\nbr_netfilter\n' > /etc/modules-load.d/kubernetes.conf
printf 'net.bridge.bridge-nf-call-iptables = 1\nnet.ipv4.ip_forward = 1\n' \
  > /etc/sysctl.d/99-kubernetes.conf
sysctl --system

apt-get update
apt-get install -y apt-transport-https ca-certificates curl gpg containerd python3 openssl
mkdir -p /etc/containerd
containerd config default | sed 's/SystemdCgroup = false/SystemdCgroup = true/' > /etc/containerd/config.toml
systemctl restart containerd

mkdir -p /etc/apt/keyrings
curl -fsSL "https://pkgs.k8s.io/core:/stable:/__KUBE_VERSION__/deb/Release.key" \
  | gpg --dearmor --yes -o /etc/apt/keyrings/kubernetes.gpg
echo "deb [signed-by=/etc/apt/keyrings/kubernetes.gpg] https://pkgs.k8s.io/core:/stable:/__KUBE_VERSION__/deb/ /" \
  > /etc/apt/sources.list.d/kubernetes.list
apt-get update
apt-get install -y kubelet kubeadm kubectl
apt-mark hold kubelet kubeadm kubectl
systemctl enable --now kubelet

# The CA the first master signalled, as {"ca": "<base64 PEM>"}; joiners trust only its key.
ca_cert_hash() {
  echo '__CA_SIGNAL__' | python3 -c \
    'import base64, json, sys; sys.stdout.write(base64.b64decode(json.load(sys.stdin)["ca"]).decode())' \
    > /etc/bayport/ca.crt
  echo "sha256:$(openssl x509 -pubkey -noout -in /etc/bayport/ca.crt | openssl pkey -pubin -outform der \
    | openssl dgst -sha256 -hex | sed 's/^.* //')"
}
