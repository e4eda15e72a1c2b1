set -e
umask 077
k=$(wg genpsk)
printf '%s %s\n' epsilon "$k"
k=; IFS= read -r k < /etc/wireguard/mesh-push-seed.psk/rho || true
printf '%s %s\n' rho "$k"
k=
